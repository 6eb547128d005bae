//! A PHP site served over HTTP/1.1 and HTTP/2 (h2c), as nginx in front of php-fpm serves it:
//! `*.php` through FastCGI (kept, pooled connections), directories to `index.php`,
//! other files static. The work is [`fcgi_http::Gateway`]'s, served by
//! [`fcgi_http::Server`]; this is the command line.
//!
//! ```text
//! cargo run -p fcgi-http --example php_gateway -- \
//!     --listen 127.0.0.1:8080 --upstream unix:/run/php/php-fpm.sock --root /srv/www
//! ```
//!
//! `--upstream` takes `HOST:PORT`, `unix:/path` or a socket path starting with `/`.

use std::net::SocketAddr;
use std::time::Duration;

use fcgi_http::{Gateway, ScriptConfig, Server};
use fcgi_tokio::{Address, Client, Options};
use tokio::net::TcpListener;

const USAGE: &str = "usage: php_gateway --listen ADDR --upstream ADDRESS --root DIR";

struct Args {
    listen: SocketAddr,
    upstream: Address,
    root: String,
}

fn parse_args() -> Result<Args, String> {
    let (mut listen, mut upstream, mut root) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        let slot = match name.as_str() {
            "--listen" => &mut listen,
            "--upstream" => &mut upstream,
            "--root" => &mut root,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?;
        *slot = Some(value);
    }
    let missing = |what: &str| format!("missing {what}\n{USAGE}");
    Ok(Args {
        listen: listen
            .ok_or_else(|| missing("--listen"))?
            .parse()
            .map_err(|e| format!("--listen: {e}"))?,
        upstream: upstream
            .ok_or_else(|| missing("--upstream"))?
            .parse()
            .map_err(|e| format!("--upstream: {e}"))?,
        root: root.ok_or_else(|| missing("--root"))?,
    })
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let client =
        Client::with_upstreams([args.upstream], Options::default()).expect("one upstream is given");
    let gateway = match Gateway::new(client, ScriptConfig::new(args.root.as_str())) {
        Ok(gateway) => gateway,
        Err(e) => {
            eprintln!("--root {}: {e}", args.root);
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let local = listener
        .local_addr()
        .expect("a bound listener has an address");
    println!("listening on http://{local}");
    // HTTP/1.1 and h2c, until Ctrl-C; then the requests in flight get 10 s.
    let draining = Server::new()
        .serve(listener, gateway, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    draining.finish(Duration::from_secs(10)).await;
}
