//! The documentation that the core and both adapters share, written once. An adapter's
//! `Client` and `ResponseStream` are type aliases, whose pages show the alias's own text
//! and the type's methods: the alias takes its text from here, and so does the type.

/// Shared documentation as a string literal, for `#[doc = ...]`:
/// `client`, `response_stream`, and `multiplexing` with the words that say where a
/// multiplexed connection's driver task runs (a crate's `# One request per connection,
/// or multiplexed` section).
#[doc(hidden)]
#[macro_export]
macro_rules! shared_docs {
    (client) => {
        "A FastCGI client shared by many tasks: `Clone + Send + Sync`, with a pool of
connections to one or more upstream addresses.

Connections are kept when the server allows (`FCGI_KEEP_CONN`) and reused most
recently used first; at most [`Options::max_connections`] are open per upstream.
Requests go to the upstreams in turn; one that cannot connect passes to the next, as
nginx's `fastcgi_next_upstream error` does. A request that fails on a reused
connection before any byte of its response arrived is sent once more on a fresh
connection, when its body is in memory. Dropping a request's future or its response
stream at any point closes its connection; nothing half-read is ever reused. With
[`Options::multiplex`] and a server that multiplexes, requests share connections
instead, and a dropped request is aborted alone (see there).
"
    };
    (response_stream) => {
        "A response whose head has arrived; its body streams as a `Stream` of `Bytes`
(no copy) or through the runtime's `AsyncRead`.

Dropping it before the end of the body closes the connection (on a multiplexed
connection: aborts the request alone, see [`Options::multiplex`]).
"
    };
    (multiplexing, $driver:literal) => {
        concat!(
            "By default every request has a connection to itself while it runs (php-fpm and
most servers serve one request per connection at a time): the task that sends the
request drives its connection inline, with no extra task and no channel, and the
connection goes back to the pool when the response has ended.

With [`Options::multiplex`], the client asks each upstream `GET_VALUES` before its
first request. A server that answers `FCGI_MPXS_CONNS=1` (flup, for one) gets many
requests at once on each connection, up to its `FCGI_MAX_REQS`; any other server is
served exactly as without the option. On a multiplexed connection:

- a driver task (",
            $driver,
            ") owns the socket and the protocol core; requests reach it
  through a channel, it polls their bodies into the core in turn (at most 256 KiB of
  output queued), writes, reads, and routes each event to its request's queue;
- the core numbers the requests and frees an id at its `END_REQUEST`; a request that
  is dropped (its future or its [`ResponseStream`]) is aborted with `ABORT_REQUEST`
  through the core, which drops that request's later records; the other requests on
  the connection carry on;
- the read and total timeouts are kept per request, as on the one-request path; a
  server that takes no output for the write timeout fails the requests not yet
  written with a write timeout and the connection takes no new request;
- a broken connection (reset, closed early, protocol error) fails every request in
  flight on it with that error, and leaves the pool;
- a response whose reader lags holds at most 512 KiB, then holds back the whole
  connection until it is read or dropped: FastCGI has no flow control per request.

The same [`Client::request`], [`Client::request_streaming`] and [`ResponseStream`]
serve both paths.
"
        )
    };
}
