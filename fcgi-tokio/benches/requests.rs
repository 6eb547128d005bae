//! Requests per second and client CPU per request against a private php-fpm
//! (hello.php), sequential on a kept connection and with 32 concurrent tasks.
//!
//! `cargo bench -p fcgi-tokio --bench requests` prints a table. Sequential runs pin the
//! client and php-fpm to CPU 1 (waking a task on the other vCPU costs more than the
//! client itself); the concurrent run is not pinned. fcgi-blocking runs beside
//! fcgi-tokio in the same interleaved rounds, for scale. Figures are medians of the
//! rounds; CPU is the on-CPU time of every thread of this process (from
//! /proc/self/task/*/schedstat), divided by the number of requests.

use std::process::Command;
use std::time::{Duration, Instant};

use fcgi_proto::{Params, ParamsBuilder};
use fcgi_testkit::PhpFpm;
use fcgi_tokio::{Address, Client, Options, Request};

const SEQUENTIAL: usize = 20_000;
const CONCURRENT: usize = 40_000;
const TASKS: usize = 32;
const ROUNDS: usize = 5;

/// On-CPU nanoseconds of all threads of this process so far.
fn cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let path = task.expect("task entry").path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

fn pin(pid: u32, cpu: &str) {
    let _ = Command::new("taskset")
        .args(["-pc", cpu, &pid.to_string()])
        .output();
}

fn pin_php_fpm(fpm: &PhpFpm, cpu: &str) {
    pin(fpm.master_pid(), cpu);
    for pid in fpm.worker_pids() {
        pin(pid, cpu);
    }
}

fn pin_self(cpu: &str) {
    for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let name = task.expect("task entry").file_name();
        if let Some(tid) = name.to_str().and_then(|t| t.parse().ok()) {
            pin(tid, cpu);
        }
    }
}

#[derive(Clone, Copy)]
struct Sample {
    per_second: f64,
    cpu_us: f64,
}

fn sample(requests: usize, wall: Duration, cpu: u64) -> Sample {
    Sample {
        per_second: requests as f64 / wall.as_secs_f64(),
        cpu_us: cpu as f64 / 1000.0 / requests as f64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn blocking_sequential(fpm: &PhpFpm, params: &Params) -> Sample {
    let mut client = fcgi_blocking::Client::new(Address::Unix(fpm.unix_socket().to_path_buf()))
        .expect("address");
    let (start, cpu) = (Instant::now(), cpu_ns());
    for _ in 0..SEQUENTIAL {
        let response = client
            .request(fcgi_blocking::Request::new(params.clone()))
            .expect("request");
        assert_eq!(response.body, b"Hello, World!");
    }
    sample(SEQUENTIAL, start.elapsed(), cpu_ns() - cpu)
}

async fn tokio_sequential(client: &Client, params: &Params) -> Sample {
    let (start, cpu) = (Instant::now(), cpu_ns());
    for _ in 0..SEQUENTIAL {
        let response = client
            .request(Request::new(params.clone()))
            .await
            .expect("request");
        assert_eq!(&response.body[..], b"Hello, World!");
    }
    sample(SEQUENTIAL, start.elapsed(), cpu_ns() - cpu)
}

async fn tokio_concurrent(client: &Client, params: &Params) -> Sample {
    let (start, cpu) = (Instant::now(), cpu_ns());
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (client, params) = (client.clone(), params.clone());
            tokio::spawn(async move {
                for _ in 0..CONCURRENT / TASKS {
                    let response = client
                        .request(Request::new(params.clone()))
                        .await
                        .expect("request");
                    assert_eq!(&response.body[..], b"Hello, World!");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    sample(CONCURRENT, start.elapsed(), cpu_ns() - cpu)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there is nothing to list.
    }
    let fpm = PhpFpm::builder().max_children(TASKS as u32 + 2).start();
    let script = fpm.script("hello.php");
    let params = ParamsBuilder::new("GET", "/hello.php")
        .script("/hello.php", script.to_str().expect("UTF-8 path"))
        .build()
        .expect("params");
    let mut options = Options::default();
    options.max_connections = TASKS;
    options.max_idle = TASKS;
    let address = Address::Unix(fpm.unix_socket().to_path_buf());

    // Sequential: one thread, pinned with php-fpm to CPU 1.
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let seq_client = Client::with_upstreams([address.clone()], options.clone()).expect("client");
    pin_self("1");
    pin_php_fpm(&fpm, "1");
    let (mut blocking, mut tokio_seq) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        blocking.push(blocking_sequential(&fpm, &params));
        tokio_seq.push(current.block_on(tokio_sequential(&seq_client, &params)));
    }

    // Concurrent: 32 tasks on a two-thread runtime, nothing pinned.
    pin_self("0,1");
    pin_php_fpm(&fpm, "0,1");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = Client::with_upstreams([address], options).expect("client");
    let mut concurrent = Vec::new();
    for _ in 0..ROUNDS {
        concurrent.push(multi.block_on(tokio_concurrent(&client, &params)));
    }

    println!("| client | workload | requests/s | client CPU per request |");
    println!("|---|---|---|---|");
    for (name, workload, samples) in [
        (
            "fcgi-blocking",
            "sequential, kept connection, pinned to one CPU",
            &blocking,
        ),
        (
            "fcgi-tokio",
            "sequential, kept connection, pinned to one CPU",
            &tokio_seq,
        ),
        (
            "fcgi-tokio",
            "32 concurrent tasks, 32 connections, 2 CPUs",
            &concurrent,
        ),
    ] {
        println!(
            "| {name} | {workload} | {:.0} | {:.1} us |",
            median(samples.iter().map(|s| s.per_second).collect()),
            median(samples.iter().map(|s| s.cpu_us).collect()),
        );
    }
    println!(
        "\nmedians of {ROUNDS} rounds ({SEQUENTIAL} sequential, {CONCURRENT} concurrent requests each), php-fpm static pool of {} workers, hello.php",
        TASKS + 2
    );
}
