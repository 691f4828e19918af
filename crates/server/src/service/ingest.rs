//! Storing what clients send: events through the ingest writer (a keyed request's answer
//! with them, see `crate::ingest`). Handlers parse and shape; background jobs (sync) will
//! call the same.

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::ingest::IngestError;
use crate::store::{EventRow, KeptAnswer};

/// Stores `rows` in one commit and, once they are stored, keeps `answer` (a keyed
/// request's) before returning.
pub async fn track(state: &AppState, rows: Vec<EventRow>, answer: Option<KeptAnswer>) -> Result<()> {
    room_to_write(state)?;
    state.ingest.submit_answered(rows, answer).await.map_err(write_error)
}

/// Writes wait while the disk is under its free-space floor (`crate::disk`).
pub fn room_to_write(state: &AppState) -> Result<()> {
    state.disk.check().map_err(|low| Error::unavailable(low.to_string(), 30))
}

/// What a refused write tells the client: a full queue, a full disk, a store being opened
/// again or a shutdown is a 503 to retry.
pub fn write_error(e: IngestError) -> Error {
    match e {
        IngestError::Busy => Error::unavailable("the write queue is full; retry after the Retry-After delay", 1),
        IngestError::Closed => Error::unavailable("the service is shutting down", 5),
        IngestError::Refused(m) => Error::unavailable(m, 30),
        IngestError::Failed(m) => Error::internal(m),
    }
}
