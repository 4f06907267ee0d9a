//! The chat response as an HTTP response whose body yields one chunk per
//! frame, as soon as it is written: the same type serves Lambda response
//! streaming ([`to_stream_response`]) and the local host. A JSON answer
//! (widget analytics) is one chunk.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Response, StatusCode};
use lambda_runtime::{MetadataPrelude, StreamResponse};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt as _, wrappers::ReceiverStream};

use domain::edge::JsonResponse;

use crate::service::ChatResponse;

pub struct FrameBody(mpsc::Receiver<Bytes>);

impl http_body::Body for FrameBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

pub fn to_http_response(response: ChatResponse) -> Response<FrameBody> {
    let mut http = Response::new(FrameBody(response.body));
    *http.status_mut() = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in domain::sse::HEADERS {
        http.headers_mut().insert(name, http::HeaderValue::from_static(value));
    }
    for (name, value) in response.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            http.headers_mut().insert(name, value);
        }
    }
    http
}

pub fn to_json_response(response: JsonResponse) -> Response<FrameBody> {
    let (tx, body) = mpsc::channel(1);
    let _ = tx.try_send(Bytes::from(response.body));
    let mut http = Response::new(FrameBody(body));
    *http.status_mut() = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            http.headers_mut().insert(name, value);
        }
    }
    http
}

/// The response as Lambda response streaming sends it: its status and
/// headers in the prelude, then each frame as a chunk as soon as it is written.
pub fn to_stream_response(
    response: Response<FrameBody>,
) -> StreamResponse<impl Stream<Item = Result<Bytes, Infallible>> + Unpin + Send + 'static> {
    let (parts, FrameBody(frames)) = response.into_parts();
    let metadata_prelude =
        MetadataPrelude { status_code: parts.status, headers: parts.headers, cookies: Vec::new() };
    StreamResponse { metadata_prelude, stream: ReceiverStream::new(frames).map(Ok) }
}
