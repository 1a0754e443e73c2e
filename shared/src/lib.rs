//! The domain of the webhook platform: event types, the webhook resource and its
//! validation, API keys, the SSRF rule and the store (DynamoDB and in-memory).

pub mod api_key;
pub mod audit;
pub mod aws;
pub mod client_tls;
pub mod custom_headers;
pub mod delivery;
pub mod delivery_log;
pub mod delivery_stats;
pub mod emit;
pub mod event;
pub mod event_log;
pub mod event_type;
pub mod ids;
pub mod infra;
pub mod json;
pub mod key_lifecycle;
pub mod lane;
pub mod logging;
pub mod notice;
pub mod oauth2;
pub mod random;
pub mod recovery;
pub mod requeue;
pub mod retry;
pub mod samples;
pub mod settings;
pub mod signing;
pub mod slow_lane;
pub mod ssrf;
pub mod store;
pub mod tenant_settings;
pub mod throttle;
pub mod token;
pub mod validation;
pub mod webhook;
pub mod webhook_url;

pub use event_type::{EventSet, EventType};
pub use ids::{TenantId, WebhookId};
pub use lane::Lane;
pub use settings::Settings;
pub use tenant_settings::TenantSettings;
pub use token::Token;
pub use validation::ValidationError;
pub use webhook::{Description, Status, Webhook};
pub use webhook_url::{UrlPolicy, WebhookUrl};
