<?php
// A script beside the front controller that runs itself (not through Slim).
declare(strict_types=1);
require __DIR__ . '/../src/server_fields.php';
header('Content-Type: application/json');
echo json_encode(server_fields($_SERVER), JSON_UNESCAPED_SLASHES), "\n";
