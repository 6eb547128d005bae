//! Health checks of a client's upstreams: each is asked a page (php-fpm's `ping.path`)
//! every few seconds, and taken out of service while it does not answer it with a 2xx.

use std::time::Duration;

use fcgi_proto::ParamsBuilder;
use fcgi_tokio::{Address, Client, Options, Request};

/// Asks every upstream of a [`Client`] a page at an interval, and takes an upstream out
/// of service ([`Client::set_upstream_healthy`]) while it fails: no answer within the
/// timeout, a connect error, or a status outside 2xx. Requests then go to the others
/// (to it again when all are out), and it is put back at its first good answer.
///
/// The page is a FastCGI request with `SCRIPT_NAME`, `SCRIPT_FILENAME` and
/// `REQUEST_URI` all the path, as php-fpm's `ping.path` (`/ping`, answered `pong`
/// without running PHP) wants it; each check runs on a connection of its own, beside
/// the client's pool. Changes are logged (`tracing`, target `fcgi_http`).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use fcgi_http::HealthCheck;
/// use fcgi_tokio::{Client, Options};
///
/// let client = Client::with_upstreams(
///     ["10.0.0.1:9000".parse()?, "10.0.0.2:9000".parse()?],
///     Options::default(),
/// )?;
/// // Until `checks` is dropped.
/// let checks = HealthCheck::new("/ping").spawn(&client);
/// # drop(checks);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct HealthCheck {
    path: String,
    interval: Duration,
    timeout: Duration,
}

impl HealthCheck {
    /// Checks of `path` every 5 s, each within 2 s.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
        }
    }

    /// The time between two checks of an upstream (default 5 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The bound on one check, connect included (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts checking `client`'s upstreams in a tokio task; it stops when the returned
    /// guard is dropped. The first round runs at once.
    pub fn spawn(self, client: &Client) -> HealthChecks {
        let client = client.clone();
        let task = tokio::spawn(async move {
            let probes: Vec<(Address, Option<Client>)> = client
                .upstreams()
                .map(|address| {
                    let mut options = Options::default();
                    options.max_connections = 1;
                    options.max_idle = 1;
                    options.connect_timeout = Some(self.timeout);
                    options.total_timeout = Some(self.timeout);
                    let probe = Client::with_upstreams([address.clone()], options).ok();
                    (address.clone(), probe)
                })
                .collect();
            let mut ticks = tokio::time::interval(self.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                for (index, (address, probe)) in probes.iter().enumerate() {
                    let healthy = match probe {
                        Some(probe) => self.check(probe).await,
                        None => Err(Failure::NoClient),
                    };
                    let was = client.upstream_healthy(index);
                    match (&healthy, was) {
                        (Err(failure), true) => tracing::warn!(
                            target: "fcgi_http",
                            upstream = %address,
                            error = failure as &(dyn std::error::Error + 'static),
                            "upstream out of service: its health check failed"
                        ),
                        (Ok(()), false) => tracing::warn!(
                            target: "fcgi_http",
                            upstream = %address,
                            "upstream back in service: its health check passed"
                        ),
                        _ => {}
                    }
                    client.set_upstream_healthy(index, healthy.is_ok());
                }
            }
        });
        HealthChecks { task }
    }

    /// One check: `Ok` for a 2xx within the timeout.
    async fn check(&self, probe: &Client) -> Result<(), Failure> {
        let params = ParamsBuilder::new("GET", &self.path)
            .script(&self.path, &self.path)
            .build()
            .map_err(|e| Failure::Client(e.into()))?;
        let response = tokio::time::timeout(self.timeout, probe.request(Request::new(params)))
            .await
            .map_err(|_| Failure::Timeout(self.timeout))?
            .map_err(Failure::Client)?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(Failure::Status(response.status))
        }
    }
}

/// Why a health check failed.
#[derive(Debug)]
enum Failure {
    /// The probe's client could not be made (it cannot fail for an address that parsed).
    NoClient,
    Timeout(Duration),
    Client(fcgi_tokio::Error),
    Status(u16),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoClient => f.write_str("no client for the check"),
            Failure::Timeout(t) => write!(f, "no answer within {t:?}"),
            Failure::Client(_) => f.write_str("the request failed"),
            Failure::Status(status) => write!(f, "status {status}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Client(e) => Some(e),
            _ => None,
        }
    }
}

/// Running health checks ([`HealthCheck::spawn`]); dropping it stops them.
#[derive(Debug)]
pub struct HealthChecks {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}
