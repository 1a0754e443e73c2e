//! Why a job's messages go back to the queue: the one reason each stage of
//! the batch gives, logged when the messages are returned.

/// Why a job's messages go back to the queue (SQS hands them over again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unfinished {
    /// The tenant's webhooks could not be read, or the event not kept.
    NotPlanned,
    /// Handing an attempt to the slow lane failed.
    NotForwarded,
    /// An attempt's outcome could not be recorded.
    Unrecorded,
    /// An attempt's retry could not be queued (so it is not recorded either).
    RetryNotQueued,
    /// A throttled attempt's slot could not be reserved.
    NotReserved,
    /// The invocation's deadline came first.
    Deadline,
}

impl Unfinished {
    /// The reason as the logs spell it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unfinished::NotPlanned => "not_planned",
            Unfinished::NotForwarded => "not_forwarded",
            Unfinished::Unrecorded => "unrecorded",
            Unfinished::RetryNotQueued => "retry_not_queued",
            Unfinished::NotReserved => "not_reserved",
            Unfinished::Deadline => "deadline",
        }
    }
}
