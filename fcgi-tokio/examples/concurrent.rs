//! Sends N requests with C tasks sharing one client:
//! `cargo run --release -p fcgi-tokio --example concurrent -- ADDRESS SCRIPT_FILENAME N C`.

use fcgi_tokio::{Client, Request};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, script, n, c] = &args[..] else {
        eprintln!("usage: concurrent ADDRESS SCRIPT_FILENAME N C");
        std::process::exit(2);
    };
    let (n, c): (usize, usize) = (n.parse()?, c.parse()?);
    let client = Client::new(address.as_str())?;
    let params = fcgi_proto::ParamsBuilder::new("GET", "/")
        .script("/", script)
        .build()?;
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..c {
        let client = client.clone();
        let params = params.clone();
        tasks.push(tokio::spawn(async move {
            for _ in (t..n).step_by(c) {
                let response = client.request(Request::new(params.clone())).await?;
                assert_eq!(response.status, 200);
            }
            Ok::<(), fcgi_tokio::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    println!(
        "{n} requests in {elapsed:?} ({:.0}/s), {} connections opened",
        n as f64 / elapsed.as_secs_f64(),
        client.connections_opened()
    );
    Ok(())
}
