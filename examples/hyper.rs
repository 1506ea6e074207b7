//! No adapter at all: the framework-free core inside a plain `hyper` service. This is the
//! path for any framework sealed-session has no adapter for: read the Cookie header, `open`,
//! use the session, `save`, append the Set-Cookie headers.
//!
//! ```sh
//! cargo run --example hyper
//! curl -c jar -b jar http://127.0.0.1:3001/   # visit 1, visit 2, ...
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{COOKIE, HeaderValue, SET_COOKIE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig};

async fn handle(
    codec: Arc<SessionCodec>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // 1. Open: every Cookie header of the request, as the bytes received (another cookie may
    // hold bytes that are not ASCII); a rejection becomes a fresh session.
    let cookies = request.headers().get_all(COOKIE);
    let mut session = match codec.open_headers(cookies, SystemTime::now()) {
        Ok(session) => session,
        Err(rejection) => {
            eprintln!("session rejected: {rejection}");
            rejection.into_fresh_session()
        }
    };

    // 2. Use it.
    //    A value that does not decode is a server fault: log it, answer an empty 500 (never the
    //    reason, which names the key).
    let visits = match session.update("visits", |n: &mut u64| {
        *n += 1;
        *n
    }) {
        Ok(visits) => visits,
        Err(error) => {
            eprintln!("session value error: {error}");
            let mut response = Response::new(Full::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(response);
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(format!("visit {visits}\n"))));

    // 3. Save: Set-Cookie headers only when the session changed or needs a refresh. A session
    //    too large to save is a server fault: answer an empty 500.
    match codec.save(&mut session, SystemTime::now()) {
        Ok(None) => {}
        Ok(Some(set_cookies)) => {
            for value in set_cookies.header_values() {
                let value = HeaderValue::try_from(value).expect("cookie values are ASCII");
                response.headers_mut().append(SET_COOKIE, value);
            }
        }
        Err(error) => {
            eprintln!("session not saved: {error}");
            response = Response::new(Full::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let codec =
        Arc::new(SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate())));
    let port = std::env::var("PORT").ok().map_or(Ok(3001), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("hyper example listening on http://{}/", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let codec = Arc::clone(&codec);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&codec), request));
            if let Err(error) =
                http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}
