//! Every case of the test kit's hostile server against this client, on async-std and
//! then on smol: the exact outcome, within the case's time bound, within its memory
//! bound. One line per case and runtime.
//!
//! Memory: the cases run one after another in this one test (the only test of this
//! binary), so the process's resident memory is this client's. Before each case the
//! peak (`VmHWM`) is reset where the kernel allows it, and the bound applies to the
//! peak's growth over the resident memory before the case; elsewhere to the resident
//! memory after the case.

mod common;

use std::time::{Duration, Instant};

use common::Rt;
use fcgi_async_std::{Address, Client, Options, Request};
use fcgi_proto::ParamsBuilder;
use fcgi_testkit::hostile::{self, Case, Got, Hostile};

async fn run(rt: Rt, case: &Case) -> Result<String, String> {
    let server = Hostile::start(case);
    let address = Address::Unix(server.socket().to_path_buf());
    let address_text = address.to_string();
    let mut options = Options::default();
    options.connect_timeout = Some(Duration::from_secs(5));
    options.write_timeout = Some(Duration::from_secs(5));
    options.read_timeout = Some(case.timeouts.read);
    options.total_timeout = case.timeouts.total;
    let client = Client::with_upstreams([address], options).unwrap();
    let params = ParamsBuilder::new("GET", "/hostile.php")
        .script("/hostile.php", "/srv/hostile.php")
        .build()
        .unwrap();
    let request = Request::new(params);

    let peak = hostile::reset_peak_resident();
    let before = hostile::resident_bytes();
    let start = Instant::now();
    let result = client.request(request).await;
    let elapsed = start.elapsed();
    let after = if peak {
        hostile::peak_resident_bytes()
    } else {
        hostile::resident_bytes()
    };
    let growth = after.saturating_sub(before);

    let outcome = match &result {
        Ok(r) => Ok(Got {
            status: r.status,
            head: &r.head,
            body: &r.body,
            stderr: &r.stderr,
        }),
        Err(e) => Err(e),
    };
    let shown = match &result {
        Ok(r) => format!("{} with {} bytes", r.status, r.body.len()),
        Err(e) => format!("{e:?}"),
    };
    let mut problems = Vec::new();
    if let Err(e) = case.expected.check(outcome, &address_text) {
        problems.push(e);
    }
    if elapsed > case.within {
        problems.push(format!("took {elapsed:?}, more than {:?}", case.within));
    }
    if growth > case.memory.max_growth {
        problems.push(format!(
            "memory grew {growth} bytes, more than {} ({})",
            case.memory.max_growth, case.memory.note
        ));
    }
    drop(client);
    let served = rt.unblock(move || server.join()).await;
    let line = format!(
        "{:<9} {:<40} {:>8.1?} rss+{:>6} KiB  server wrote {}/{}  {}",
        format!("{rt:?}"),
        case.name,
        elapsed,
        growth / 1024,
        served.written,
        case.reply_len(),
        shown
    );
    if problems.is_empty() {
        Ok(line)
    } else {
        Err(format!("{line}\n    FAILED: {}", problems.join("; ")))
    }
}

#[test]
fn every_hostile_case_on_async_std_and_smol() {
    let cases = hostile::cases();
    let mut failures = Vec::new();
    for rt in [Rt::AsyncStd, Rt::Smol] {
        let start = Instant::now();
        rt.block_on(async {
            for case in &cases {
                match run(rt, case).await {
                    Ok(line) => println!("ok   {line}"),
                    Err(text) => {
                        println!("FAIL {text}");
                        failures.push(text);
                    }
                }
            }
        });
        println!(
            "{rt:?}: {} hostile cases in {:?}",
            cases.len(),
            start.elapsed()
        );
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
