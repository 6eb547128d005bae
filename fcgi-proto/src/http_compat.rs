//! Conversions from the `http` crate's request types (feature `http`).

use crate::params::ParamsBuilder;

impl<'a> ParamsBuilder<'a> {
    /// Starts from an `http` request head: method, request target (path and query) and
    /// every header, in order, but `Transfer-Encoding`: the application reads its body
    /// from `STDIN`, framed by `CONTENT_LENGTH` alone, and an `HTTP_TRANSFER_ENCODING`
    /// of `chunked` beside it would only mislead it.
    ///
    /// ```
    /// let (parts, ()) = http::Request::post("/form.php?x=1")
    ///     .header("content-type", "application/x-www-form-urlencoded")
    ///     .header("x-trace", "a")
    ///     .header("x-trace", "b")
    ///     .body(())
    ///     .unwrap()
    ///     .into_parts();
    /// let params = fcgi_proto::ParamsBuilder::from_http(&parts)
    ///     .script_filename("/srv/www/form.php")
    ///     .content_length(0)
    ///     .build()?;
    /// assert_eq!(params.get("REQUEST_METHOD"), Some(&b"POST"[..]));
    /// assert_eq!(params.get("QUERY_STRING"), Some(&b"x=1"[..]));
    /// assert_eq!(params.get("CONTENT_TYPE"), Some(&b"application/x-www-form-urlencoded"[..]));
    /// assert_eq!(params.get("HTTP_X_TRACE"), Some(&b"a, b"[..]));
    /// # Ok::<(), fcgi_proto::ParamError>(())
    /// ```
    pub fn from_http(parts: &'a http::request::Parts) -> Self {
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut builder =
            ParamsBuilder::new(parts.method.as_str(), target).reserve_headers(parts.headers.len());
        for (name, value) in &parts.headers {
            if name == http::header::TRANSFER_ENCODING {
                continue;
            }
            builder = builder.header_bytes(name.as_str().as_bytes(), value.as_bytes());
        }
        if parts.version == http::Version::HTTP_10 {
            builder = builder.server_protocol("HTTP/1.0");
        } else if parts.version == http::Version::HTTP_2 {
            builder = builder.server_protocol("HTTP/2.0");
        }
        builder
    }
}
