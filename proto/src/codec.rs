//! The codec the generated *servers* use: prost's, except that a request
//! that is not valid protobuf for its method (garbage bytes, a truncated
//! field, invalid UTF-8 in a `string`) is refused with `INVALID_ARGUMENT`.
//!
//! tonic's prost codec answers such a request `INTERNAL`, as gRPC's status
//! code table suggests; but `INTERNAL` means "the server failed, retry" in
//! `docs/protocol.md` §9, and a client resending the same bytes would only
//! be refused again. The clients keep prost's codec: a response that does
//! not decode is the server's fault, not the caller's, and stays `INTERNAL`.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// The message of the status a request that does not decode is refused
/// with (followed by prost's reason, which names message types and fields,
/// never their content).
pub const UNDECODABLE_REQUEST: &str = "the request is not a valid protobuf message for this method (fix the sender; resending it unchanged will fail again)";

/// prost's encoding of responses and a decoding of requests that refuses
/// undecodable bytes with `INVALID_ARGUMENT` (module documentation).
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes one request message `U`; see [`RequestCodec`].
#[derive(Debug, Clone)]
pub struct RequestDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("{UNDECODABLE_REQUEST}: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
