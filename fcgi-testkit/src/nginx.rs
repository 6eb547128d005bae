//! A private nginx for tests that compare the fcgi crates with it: one process
//! (`daemon off; master_process off;`) on a free port of 127.0.0.1, with its
//! configuration, logs, pid file and temporary directories in a temporary directory of
//! its own.
//!
//! ```no_run
//! use fcgi_testkit::{Nginx, PhpFpm};
//!
//! let fpm = PhpFpm::shared();
//! // The inside of the `server { }` block; the kit adds `listen 127.0.0.1:PORT;`.
//! let nginx = Nginx::start(&format!(
//!     "root {root};
//!      location ~ \\.php$ {{
//!          include fastcgi_params;
//!          fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
//!          fastcgi_pass unix:{socket};
//!      }}",
//!     root = fpm.docroot().display(),
//!     socket = fpm.unix_socket().display(),
//! ));
//! let url = format!("http://{}/hello.php", nginx.addr());
//! drop(nginx); // SIGTERM, waits for it, removes its directory
//! ```
//!
//! # Finding nginx
//!
//! [`find_nginx`] takes the path in `FCGI_TEST_NGINX`, else `nginx` on `PATH`, else
//! `/usr/sbin/nginx`. Starting panics when there is none, with the way to install it:
//! `apt-get install -y nginx-light` (Debian 12: nginx 1.22; installing starts no
//! service that matters here, the kit's nginx has its own port and files).
//!
//! # The configuration
//!
//! `DIR/nginx.conf` holds the main context (`daemon off`, `master_process off`, so a
//! single process that runs as the user of the tests and is this kit's own, `pid
//! DIR/nginx.pid`, `error_log DIR/error.log info`), and an `http` block with `include
//! mime.types; default_type application/octet-stream;` (as Debian's stock
//! configuration), `access_log DIR/access.log`, every `*_temp_path` under `DIR`, and one
//! `server` block: `listen 127.0.0.1:PORT;` then the caller's fragment. The system's
//! `mime.types` and `fastcgi_params` (from `/etc/nginx`, Debian's `nginx-common`) are
//! copied into `DIR`, so that `include fastcgi_params;` works as it does in a deployed
//! configuration.
//!
//! # Stopping
//!
//! nginx runs under the same `sh` wrapper as php-fpm (see the crate documentation): when
//! [`Nginx`] is dropped, or the test process exits in any way, the wrapper sends SIGTERM
//! to nginx's pid (from the pid file; nginx exits at once: fast shutdown) and removes
//! `DIR`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, is_executable, make_temp_dir, process, read_lossy, WRAPPER};

/// The environment variable that names the nginx binary to use.
pub const NGINX_ENV: &str = "FCGI_TEST_NGINX";

/// How nginx is installed, for the message when it is missing.
pub const NGINX_INSTALL_HINT: &str = "apt-get update && apt-get install -y nginx-light";

/// Where Debian keeps the files a configuration includes.
const SYSTEM_CONF_DIR: &str = "/etc/nginx";

/// The files copied from [`SYSTEM_CONF_DIR`] next to the configuration.
const INCLUDED: &[&str] = &["mime.types", "fastcgi_params"];

/// How long nginx gets to accept connections after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stop waits for nginx to exit before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts tried before giving up when the port was taken.
const PORT_ATTEMPTS: u32 = 8;

/// Finds the nginx binary: `$FCGI_TEST_NGINX`, else `nginx` on `PATH`, else
/// `/usr/sbin/nginx`; `None` when there is none.
pub fn find_nginx() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(NGINX_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nginx"))
        .find(|path| is_executable(path));
    on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        is_executable(&sbin).then_some(sbin)
    })
}

/// A private nginx serving one `server` block on 127.0.0.1 (see the module
/// documentation). Dropping it stops nginx and removes its directory.
#[derive(Debug)]
pub struct Nginx {
    dir: PathBuf,
    addr: SocketAddr,
    pid: u32,
    wrapper: Child,
    control: Option<ChildStdin>,
}

impl Nginx {
    /// Starts nginx with `server` as the inside of its `server { }` block (after
    /// `listen 127.0.0.1:PORT;`), and returns once it accepts connections.
    ///
    /// # Panics
    ///
    /// When nginx is not installed (the message says how to install it), when the
    /// configuration is refused or nginx does not come up within 10 s (the message holds
    /// its error log).
    pub fn start(server: &str) -> Self {
        let binary = find_nginx().unwrap_or_else(|| {
            panic!(
                "nginx not found (looked at ${NGINX_ENV}, nginx on PATH and /usr/sbin/nginx); \
                 install it with `{NGINX_INSTALL_HINT}` (scripts/test does) or set \
                 {NGINX_ENV} to its path"
            )
        });
        assert!(
            is_executable(&binary),
            "nginx binary {} is not an executable file; install nginx with \
             `{NGINX_INSTALL_HINT}` or set {NGINX_ENV} to its path",
            binary.display()
        );
        let dir = make_temp_dir();
        for name in INCLUDED {
            let from = Path::new(SYSTEM_CONF_DIR).join(name);
            fs::copy(&from, dir.join(name)).unwrap_or_else(|e| {
                panic!(
                    "cannot copy {} (Debian's nginx-common installs it; \
                     `{NGINX_INSTALL_HINT}`): {e}",
                    from.display()
                )
            });
        }
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            match launch(&binary, &dir, addr, server) {
                Ok(nginx) => return nginx,
                Err(log) => last_log = log,
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "nginx could not bind a free port in {PORT_ATTEMPTS} attempts; last log:\n{last_log}"
        );
    }

    /// The address nginx listens on, `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory of its configuration, logs and temporary files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id of nginx (a single process: `master_process off`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The configuration file it runs.
    pub fn config(&self) -> String {
        read_lossy(&self.dir.join("nginx.conf"), 0)
    }

    /// Its error log so far (level `info` and above; what FastCGI applications write on
    /// STDERR lands here too, as `FastCGI sent in stderr: ...`).
    pub fn error_log(&self) -> String {
        read_lossy(&self.dir.join("error.log"), 0)
    }

    /// Its access log so far, nginx's `combined` format.
    pub fn access_log(&self) -> String {
        read_lossy(&self.dir.join("access.log"), 0)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // End of input: the wrapper's watcher sends SIGTERM to nginx and the wrapper
        // removes the directory once nginx has exited.
        drop(self.control.take());
        if crate::wait_timeout(&mut self.wrapper, STOP_TIMEOUT).is_none() {
            process::signal("KILL", &[self.pid]);
            let _ = self.wrapper.kill();
            let _ = self.wrapper.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The whole configuration file.
fn config(dir: &Path, addr: SocketAddr, server: &str) -> String {
    let d = dir.to_str().expect("temporary paths are UTF-8");
    assert!(
        !d.contains(['"', '\'', ';', '{', '}', '$', ' ', '\n']),
        "unusable path for nginx: {d:?}"
    );
    format!(
        "# Written by fcgi-testkit.
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    include mime.types;
    default_type application/octet-stream;
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    fastcgi_temp_path {d}/fastcgi;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {addr};
{server}
    }}
}}
"
    )
}

/// Writes the configuration, tests it, starts nginx through the wrapper and waits until
/// it accepts connections. `Err(log)` when the port was taken.
fn launch(binary: &Path, dir: &Path, addr: SocketAddr, server: &str) -> Result<Nginx, String> {
    let conf = dir.join("nginx.conf");
    fs::write(&conf, config(dir, addr, server))
        .unwrap_or_else(|e| panic!("cannot write {conf:?}: {e}"));
    let error_log = dir.join("error.log");
    let pid_file = dir.join("nginx.pid");
    let stderr_path = dir.join("stderr.log");
    // A failed attempt's files would mislead this one's diagnostics.
    for stale in [&pid_file, &error_log, &stderr_path, &dir.join("access.log")] {
        let _ = fs::remove_file(stale);
    }
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stderr_path)
        .unwrap_or_else(|e| panic!("cannot open {stderr_path:?}: {e}"));
    let stdout = stderr
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot open {stderr_path:?}: {e}"));
    let mut wrapper = Command::new("sh")
        .arg("-c")
        .arg(WRAPPER)
        .arg("fcgi-testkit-nginx")
        .arg(dir)
        .arg(binary)
        .arg("-e")
        .arg(&error_log)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run sh to start nginx: {e}"));
    let control = wrapper.stdin.take();
    let logs = || {
        format!(
            "{} with {}:\n{}\n--- error.log ---\n{}\n--- stderr ---\n{}",
            binary.display(),
            conf.display(),
            read_lossy(&conf, 0),
            read_lossy(&error_log, 0),
            read_lossy(&stderr_path, 0)
        )
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut pid = 0;
    loop {
        if let Ok(Some(status)) = wrapper.try_wait() {
            let text = logs();
            if text.contains("Address already in use") {
                return Err(text);
            }
            panic!("nginx exited during start ({status}): {text}");
        }
        if pid == 0 {
            pid = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(0);
        }
        if pid != 0 && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(Nginx {
                dir: dir.to_owned(),
                addr,
                pid,
                wrapper,
                control,
            });
        }
        if Instant::now() > deadline {
            let text = logs();
            // End of input makes the wrapper stop nginx; it would also remove the
            // directory, which the caller still uses: say `keep` first.
            if let Some(mut control) = control {
                let _ = control.write_all(b"keep\n");
            }
            if crate::wait_timeout(&mut wrapper, STOP_TIMEOUT).is_none() {
                let _ = wrapper.kill();
                let _ = wrapper.wait();
            }
            panic!("nginx did not accept connections on {addr} within {READY_TIMEOUT:?}: {text}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
