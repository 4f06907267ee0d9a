//! The bytes Bedrock puts on the wire: event-stream frames for ConverseStream
//! and restJson1 error responses, in the shapes the SDK's deserializers expect.

use aws_smithy_eventstream::{error::Error as FrameError, frame::write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde_json::{Value, json};

pub const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// An `event` frame: `:event-type` names the ConverseStreamOutput member.
pub fn event_frame(event_type: &str, payload: &Value) -> Result<Bytes, FrameError> {
    frame(
        [(":message-type", "event"), (":event-type", event_type), (":content-type", "application/json")],
        payload,
    )
}

/// An `exception` frame, which the SDK surfaces as a typed error from `recv()`.
pub fn exception_frame(exception_type: &str, message: &str) -> Result<Bytes, FrameError> {
    frame(
        [
            (":message-type", "exception"),
            (":exception-type", exception_type),
            (":content-type", "application/json"),
        ],
        &json!({ "message": message }),
    )
}

fn frame(headers: [(&str, &str); 3], payload: &Value) -> Result<Bytes, FrameError> {
    let headers = headers
        .into_iter()
        .map(|(name, value)| Header::new(name.to_owned(), HeaderValue::String(value.to_owned().into())))
        .collect();
    let message = Message::new_from_parts(headers, Bytes::from(payload.to_string()));
    let mut buffer = Vec::new();
    write_message_to(&message, &mut buffer)?;
    Ok(Bytes::from(buffer))
}

/// A restJson1 error: the SDK takes the error code from `x-amzn-errortype`
/// and the text from the body's `message`.
pub fn aws_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, [("x-amzn-errortype", error_type)], Json(json!({ "message": message }))).into_response()
}

pub fn validation_error(message: &str) -> Response {
    aws_error(StatusCode::BAD_REQUEST, "ValidationException", message)
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::read_message_from;

    use super::*;

    fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str())
    }

    #[test]
    fn an_event_frame_round_trips_with_its_headers_and_json_payload() {
        let bytes = event_frame("messageStop", &json!({"stopReason": "end_turn"})).unwrap();
        let message = read_message_from(bytes).unwrap();
        assert_eq!(header(&message, ":message-type"), Some("event"));
        assert_eq!(header(&message, ":event-type"), Some("messageStop"));
        assert_eq!(header(&message, ":content-type"), Some("application/json"));
        assert_eq!(&message.payload()[..], br#"{"stopReason":"end_turn"}"#);
    }

    #[test]
    fn an_exception_frame_names_its_exception_type() {
        let bytes = exception_frame("modelStreamErrorException", "boom").unwrap();
        let message = read_message_from(bytes).unwrap();
        assert_eq!(header(&message, ":message-type"), Some("exception"));
        assert_eq!(header(&message, ":exception-type"), Some("modelStreamErrorException"));
        assert_eq!(&message.payload()[..], br#"{"message":"boom"}"#);
    }
}
