//! Operator CLI: archive replay, DLQ redrive, fulfillment status, SMS usage
