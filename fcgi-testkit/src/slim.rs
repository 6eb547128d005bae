//! The Slim 3 application of `apps/slim` in this crate, written for the framework test:
//! a front-controller application (`public/index.php` runs for every path that names no
//! file) on Debian's `php-slim` package, with a static file (`public/css/site.css`) and
//! a script of its own (`public/info.php`) beside the front controller. Its routes and
//! their exact answers are listed in `apps/slim/README.md`.
//!
//! The application runs on any php-fpm of this kit (it is addressed by its absolute
//! path, `SCRIPT_FILENAME`); PHP finds Slim on its default `include_path`
//! (`/usr/share/php`).

use std::path::{Path, PathBuf};

/// The file Debian's `php-slim` installs first-party autoloading in; it pulls in the
/// autoloaders of Slim's dependencies (pimple, fast-route, the PSR interfaces).
pub const SLIM_AUTOLOAD: &str = "/usr/share/php/Slim/autoload.php";

/// How Slim is installed, for the message when it is missing.
pub const SLIM_INSTALL_HINT: &str = "apt-get update && apt-get install -y php-slim";

/// The application's directory (`src/` with the routes, `public/` the document root).
pub fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("apps")
        .join("slim")
}

/// The document root: `index.php` (the front controller), `info.php`, `css/site.css`.
pub fn public_dir() -> PathBuf {
    app_dir().join("public")
}

/// Panics, saying how to install it, when Debian's `php-slim` is not installed.
pub fn require_slim() {
    assert!(
        Path::new(SLIM_AUTOLOAD).is_file(),
        "Slim 3 is not installed ({SLIM_AUTOLOAD} is missing): install it with \
         `{SLIM_INSTALL_HINT}` (scripts/test does)"
    );
}

/// The inside of an nginx `server` block that serves `root` as Slim's documentation and
/// most deployments do, in front of the php-fpm listening on unix socket `socket`: every
/// path that names no file and no directory goes to `/index.php` with its query
/// (`try_files`), existing `*.php` files run themselves, missing ones are nginx's 404.
pub fn nginx_server(root: &Path, socket: &Path) -> String {
    format!(
        r#"        root "{root}";
        index index.php;
        location / {{
            try_files $uri $uri/ /index.php$is_args$args;
        }}
        location ~ \.php$ {{
            try_files $uri =404;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
            fastcgi_param DOCUMENT_ROOT $realpath_root;
            fastcgi_pass unix:{socket};
        }}"#,
        root = root.display(),
        socket = socket.display(),
    )
}
