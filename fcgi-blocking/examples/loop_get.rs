//! Sends N sequential GETs on one client (for syscall and CPU measurements):
//! `cargo run --release -p fcgi-blocking --example loop_get -- ADDRESS SCRIPT_FILENAME N`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, script, n] = &args[..] else {
        eprintln!("usage: loop_get ADDRESS SCRIPT_FILENAME N");
        std::process::exit(2);
    };
    let mut client = fcgi_blocking::Client::new(address.as_str())?;
    let params = fcgi_proto::ParamsBuilder::new("GET", "/")
        .script("/", script)
        .build()?;
    for _ in 0..n.parse::<u32>()? {
        let response = client.request(fcgi_blocking::Request::new(params.clone()))?;
        assert_eq!(response.status, 200);
    }
    println!("connections opened: {}", client.connections_opened());
    Ok(())
}
