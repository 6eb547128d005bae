<?php
// The POST handler: keeps the name in the session and redirects (302 from PHP's
// header('Location: ...') on a POST, which the browser follows with a GET).
session_start();
$name = trim((string) ($_POST['name'] ?? ''));
if ($name === '') {
    header('Location: /');
    exit;
}
session_regenerate_id(true);
$_SESSION['name'] = $name;
header('Location: /greet.php');
