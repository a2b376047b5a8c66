//! A lean HTTP/1.1 load generator for the token-endpoint benches: one
//! keep-alive connection per client on hyper's own client, a request built
//! from its parts (no URL parsing, redirect policy or connection pool per
//! request, as reqwest does), so the figure measures the server more than
//! the client sharing its cores. The same generator drives our server and
//! the peer it is compared with.

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// One client's connection to a server.
pub struct Connection {
    send: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    /// The base URL's path (`""` at the root), put before each request's.
    prefix: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// What went wrong with a request (the bench stops on it).
#[derive(Debug)]
pub struct LoadError(pub String);

impl Connection {
    /// A keep-alive connection to the server at `base` (`http://host:port`
    /// with an optional path).
    ///
    /// # Errors
    /// When `base` is not plain `http://`, or the server cannot be reached.
    pub async fn open(base: &str) -> Result<Self, LoadError> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| LoadError(format!("not an http:// URL: {base}")))?;
        let (authority, prefix) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| LoadError(format!("connect {authority}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| LoadError(e.to_string()))?;
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| LoadError(format!("handshake: {e}")))?;
        tokio::spawn(connection);
        Ok(Self {
            send,
            host: HeaderValue::from_str(authority).map_err(|e| LoadError(e.to_string()))?,
            prefix: prefix.trim_end_matches('/').to_owned(),
        })
    }

    /// `POST {path}` with `pairs` as an `application/x-www-form-urlencoded`
    /// body: the status and the body.
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn post_form(
        &mut self,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), LoadError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let request = Request::post(format!("{}{path}", self.prefix))
            .header(header::HOST, self.host.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| LoadError(e.to_string()))?;
        let (status, _, body) = self.send(request).await?;
        Ok((status, body))
    }

    /// Sends `request` once the connection is ready: the status, the
    /// `Location` header (empty when none) and the body.
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, String, Bytes), LoadError> {
        self.send
            .ready()
            .await
            .map_err(|e| LoadError(format!("connection: {e}")))?;
        let response = self
            .send
            .send_request(request)
            .await
            .map_err(|e| LoadError(format!("request: {e}")))?;
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| LoadError(format!("body: {e}")))?
            .to_bytes();
        Ok((status, location, body))
    }
}

impl Connection {
    /// `GET {path_and_query}` with `cookie` (when not empty): the status,
    /// the `Location` header (empty when none) and the body.
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn get(
        &mut self,
        path_and_query: &str,
        cookie: &str,
    ) -> Result<(StatusCode, String, Bytes), LoadError> {
        let mut request = Request::get(format!("{}{path_and_query}", self.prefix))
            .header(header::HOST, self.host.clone());
        if !cookie.is_empty() {
            request = request.header(header::COOKIE, cookie);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| LoadError(e.to_string()))?;
        self.send(request).await
    }
}

/// The parts of a token response a bench reads.
#[derive(Debug, serde::Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The (rotated) refresh token, when one was issued.
    pub refresh_token: Option<String>,
}

impl Connection {
    /// A token request (`POST {path}`, usually `/token`) that must succeed.
    ///
    /// # Errors
    /// When the connection fails or the answer is not a 200 token response.
    pub async fn tokens(
        &mut self,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Tokens, LoadError> {
        let (status, body) = self.post_form(path, pairs).await?;
        if status != StatusCode::OK {
            return Err(LoadError(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(|e| LoadError(format!("token response: {e}")))
    }
}
