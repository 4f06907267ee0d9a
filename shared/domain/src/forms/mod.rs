//! Conversational forms: field validation, priority, and the submission
//! record and event that fulfillment is built on.

mod contact;
mod priority;
mod validate;

pub use contact::{Contact, extract as extract_contact};
pub use priority::{Priority, priority};
pub use validate::{
    FieldErrors, ValidatedForm, flatten_composites, validate_field, validate_submission, value_text,
};

/// A single value may be at most this many characters.
pub const MAX_FIELD_CHARS: usize = 2_000;
/// The whole `form_data`, serialised, may be at most this many bytes.
pub const MAX_FORM_BYTES: usize = 32 * 1024;
