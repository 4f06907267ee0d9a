//! form-intake: the form Function URL. Its service lives in
//! `shared::intake`, which the chat function's `form_mode` also answers with;
//! this crate re-exports it for the Lambda binary and the local stack.

pub use shared::intake::*;
