//! The PHP scripts written into every docroot. The crate documentation describes the
//! exact response of each one; keep both in step.

use std::io;
use std::path::Path;

/// `(file name, PHP source)` of every built-in script.
pub(crate) const SCRIPTS: &[(&str, &str)] = &[
    ("hello.php", HELLO),
    ("echo.php", ECHO),
    ("cookies.php", COOKIES),
    ("stderr.php", STDERR),
    ("large.php", LARGE),
    ("bigheaders.php", BIG_HEADERS),
    ("sleep.php", SLEEP),
    ("server.php", SERVER),
    ("redirect.php", REDIRECT),
    ("exit_mid.php", EXIT_MID),
    ("pid.php", PID),
    ("flush_then_read.php", FLUSH_THEN_READ),
    ("status.php", STATUS),
];

/// Writes every built-in script into `docroot`.
pub(crate) fn install(docroot: &Path) -> io::Result<()> {
    for (name, source) in SCRIPTS {
        std::fs::write(docroot.join(name), source)?;
    }
    Ok(())
}

const HELLO: &str = r#"<?php
echo 'Hello, World!';
"#;

// Two passes over php://input: the first hashes it (the headers must go out before the
// body), the second echoes it. PHP keeps the request body in a php://temp stream that
// spills to a file, so a large body is never held twice in memory.
const ECHO: &str = r#"<?php
$ctx = hash_init('sha256');
$len = 0;
$in = fopen('php://input', 'rb');
while (($chunk = fread($in, 65536)) !== false && $chunk !== '') {
    hash_update($ctx, $chunk);
    $len += strlen($chunk);
}
fclose($in);
header('Content-Type: application/octet-stream');
header('X-Body-Sha256: ' . hash_final($ctx));
header('X-Body-Length: ' . $len);
$in = fopen('php://input', 'rb');
while (($chunk = fread($in, 65536)) !== false && $chunk !== '') {
    echo $chunk;
}
fclose($in);
"#;

const COOKIES: &str = r#"<?php
header('Status: 404 Not Found');
header('Set-Cookie: a=1', false);
header('Set-Cookie: b=2', false);
header('Set-Cookie: c=3', false);
echo 'not here';
"#;

const STDERR: &str = r#"<?php
echo "one\n";
flush();
error_log('first message');
echo "two\n";
flush();
error_log('second message');
echo "three\n";
"#;

// Line L of the body (16 bytes) is L in 15 lower-case hex digits and "\n". A 64 KiB
// chunk holds 4096 = 0x1000 lines, so in chunk k the first 12 digits are k and the last
// 3 digits the line within the chunk: one template, one str_replace per chunk.
const LARGE: &str = r#"<?php
$n = max(0, (int) ($_GET['bytes'] ?? 0));
header('Content-Type: application/octet-stream');
header('X-Body-Length: ' . $n);
$template = '';
for ($j = 0; $j < 4096; $j++) {
    $template .= '############' . sprintf('%03x', $j) . "\n";
}
for ($k = 0; $n > 0; $k++) {
    $chunk = str_replace('############', sprintf('%012x', $k), $template);
    if ($n < 65536) {
        $chunk = substr($chunk, 0, $n);
    }
    echo $chunk;
    flush();
    $n -= strlen($chunk);
}
"#;

const BIG_HEADERS: &str = r#"<?php
$count = max(0, (int) ($_GET['count'] ?? 0));
$size = max(0, (int) ($_GET['size'] ?? 0));
$value = str_repeat('x', $size);
for ($i = 0; $i < $count; $i++) {
    header("X-Big-$i: $value");
}
echo 'ok';
"#;

const SLEEP: &str = r#"<?php
$ms = max(0, (int) ($_GET['ms'] ?? 0));
usleep($ms * 1000);
echo "slept $ms";
"#;

const SERVER: &str = r#"<?php
header('Content-Type: application/json');
echo json_encode($_SERVER, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
"#;

// The explicit 200 keeps PHP from turning a Location header into `Status: 302 Found`.
const REDIRECT: &str = r#"<?php
header('Location: ' . ($_GET['to'] ?? '/'), true, 200);
"#;

const EXIT_MID: &str = r#"<?php
echo 'partial';
flush();
exit;
"#;

const PID: &str = r#"<?php
echo getmypid();
"#;

const FLUSH_THEN_READ: &str = r#"<?php
header('Content-Type: text/plain');
echo "started\n";
flush();
$ctx = hash_init('sha256');
$len = 0;
$in = fopen('php://input', 'rb');
while (($chunk = fread($in, 65536)) !== false && $chunk !== '') {
    hash_update($ctx, $chunk);
    $len += strlen($chunk);
}
fclose($in);
echo hash_final($ctx) . ' ' . $len . "\n";
"#;

const STATUS: &str = r#"<?php
$code = $_GET['code'] ?? '200';
header('Status: ' . $code);
echo 'status ' . $code;
"#;
