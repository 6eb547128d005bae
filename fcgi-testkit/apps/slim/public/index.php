<?php
// The front controller: the web server runs it for every path that names no file.

// Slim 3 predates PHP 8.1's return types on ArrayAccess and friends: loading it raises
// deprecation notices, which a production setup does not report.
error_reporting(E_ALL & ~E_DEPRECATED);

(require __DIR__ . '/../src/app.php')->run();
