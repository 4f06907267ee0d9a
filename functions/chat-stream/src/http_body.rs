//! The chat response as an HTTP response whose body yields one chunk per
//! frame, as soon as it is written: the same type serves Lambda response
//! streaming and the local host. A JSON answer (widget analytics) is one chunk.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Response, StatusCode};
use tokio::sync::mpsc;

use shared::edge::JsonResponse;

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
    for (name, value) in shared::sse::HEADERS {
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
