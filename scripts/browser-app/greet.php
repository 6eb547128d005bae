<?php
// The greeting: the name from the session, or 403 without one.
session_start();
if (!isset($_SESSION['name'])) {
    http_response_code(403);
    echo '<!doctype html><p id="greeting">Who are you?</p>';
    exit;
}
?><!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Hello</title><link rel="stylesheet" href="/style.css"></head>
<body>
<h1 id="greeting">Hello, <?= htmlspecialchars($_SESSION['name'], ENT_QUOTES, 'UTF-8') ?>!</h1>
<p id="via"><?= htmlspecialchars($_SERVER['SERVER_SOFTWARE'] ?? '', ENT_QUOTES, 'UTF-8') ?></p>
<p id="scheme"><?= htmlspecialchars(($_SERVER['HTTPS'] ?? 'off') . ' ' . ($_SERVER['SERVER_PROTOCOL'] ?? ''), ENT_QUOTES, 'UTF-8') ?></p>
</body>
</html>
