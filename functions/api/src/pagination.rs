//! Pages of list endpoints: how many items a page holds, and the opaque
//! cursor that says where the next one starts (read by [`crate::query`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// The page a list request asks for.
pub struct PageRequest<C> {
    pub limit: usize,
    /// Where the previous page ended, when the request gave a cursor.
    pub after: Option<C>,
}

impl<C> Default for PageRequest<C> {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// The `next_cursor` for a page that ended at `position`.
pub fn encode_cursor(position: impl std::fmt::Display) -> String {
    URL_SAFE_NO_PAD.encode(position.to_string())
}

/// The position a cursor holds, if it is one [`encode_cursor`] made.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
}
