//! Chat frames as they go on the wire: JSON text, encoded once as a WebSocket frame and
//! shared by every socket that gets it, and the close frames the server sends.

use std::sync::LazyLock;

use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame as WireFrame};

/// One server frame's JSON text.
pub type Frame = tokio_tungstenite::tungstenite::Utf8Bytes;

/// Appends `frame` as a WebSocket text frame, as a server sends it (unmasked).
pub fn encode_into(frame: &Frame, out: &mut Vec<u8>) {
    let wire = WireFrame::message(Bytes::from(frame.clone()), OpCode::Data(Data::Text), true);
    wire.format(out).expect("writing to memory cannot fail");
}

/// `frame` as a WebSocket text frame.
pub fn encode(frame: &Frame) -> Bytes {
    let mut out = Vec::with_capacity(frame.len() + 10);
    encode_into(frame, &mut out);
    out.into()
}

/// The close frame a socket too far behind gets in place of its backlog.
pub static TOO_SLOW: LazyLock<Bytes> =
    LazyLock::new(|| close_frame(CloseCode::Policy, "too slow: reconnect"));

/// An encoded close frame (RFC 6455 §5.5.1).
pub fn close_frame(code: CloseCode, reason: &str) -> Bytes {
    let frame = WireFrame::close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let mut out = Vec::new();
    frame
        .format(&mut out)
        .expect("writing to memory cannot fail");
    out.into()
}
