//! Raw gRPC calls over plaintext HTTP/2 (h2), for what the generated
//! clients cannot send: bytes that are not protobuf, metadata of any size,
//! a stream cut off midway.

use bytes::Bytes;

/// What the server answered a raw call.
#[derive(Debug)]
pub struct RawAnswer {
    /// The HTTP status of the response head.
    pub http: http::StatusCode,
    /// `grpc-status`, from the head (trailers-only) or the trailers.
    pub grpc_status: Option<tonic::Code>,
    /// `grpc-message`, percent-decoded.
    pub grpc_message: String,
}

/// `bytes` as one gRPC length-prefixed message (uncompressed).
pub fn frame(bytes: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + bytes.len());
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(bytes.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(bytes);
    framed.into()
}

fn grpc_fields(headers: &http::HeaderMap) -> (Option<tonic::Code>, String) {
    let status = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32);
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    (status, message)
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Call `path` (`/package.Service/Method`) on the plaintext listener at
/// `addr` with `metadata` and the body `frames`, then read the answer to
/// its end.
pub async fn call(
    addr: std::net::SocketAddr,
    path: &str,
    metadata: &[(&str, String)],
    frames: Vec<Bytes>,
) -> RawAnswer {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (key, value) in metadata {
        request = request.header(*key, value);
    }
    let request = request.body(()).expect("request");
    let (response, mut send) = client.send_request(request, false).expect("sent");
    let count = frames.len();
    for (i, f) in frames.into_iter().enumerate() {
        // A refusal may arrive (and reset the stream) before the body is sent.
        if send.send_data(f, i + 1 == count).is_err() {
            break;
        }
    }
    if count == 0 {
        let _ = send.send_data(Bytes::new(), true);
    }
    let response = response.await.expect("a response head");
    let http = response.status();
    let (mut grpc_status, mut grpc_message) = grpc_fields(response.headers());
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        if chunk.is_err() {
            break;
        }
    }
    if grpc_status.is_none()
        && let Ok(Some(trailers)) = body.trailers().await
    {
        (grpc_status, grpc_message) = grpc_fields(&trailers);
    }
    RawAnswer {
        http,
        grpc_status,
        grpc_message,
    }
}
