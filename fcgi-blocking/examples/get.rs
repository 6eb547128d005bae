//! Sends one GET to a FastCGI server and prints the response:
//! `cargo run -p fcgi-blocking --example get -- ADDRESS SCRIPT_FILENAME`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(script)) = (args.next(), args.next()) else {
        eprintln!("usage: get ADDRESS SCRIPT_FILENAME");
        std::process::exit(2);
    };
    let mut client = fcgi_blocking::Client::new(address.as_str())?;
    let response = client.request(fcgi_blocking::Request::get(&script, "/")?)?;
    println!("status {}", response.status);
    for h in response.head.headers() {
        println!("{}: {}", h.name(), String::from_utf8_lossy(h.value()));
    }
    println!("stderr {:?}", String::from_utf8_lossy(&response.stderr));
    println!("body {:?}", String::from_utf8_lossy(&response.body));
    Ok(())
}
