<?php
// The form: a name, posted to login.php.
session_start();
?><!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in</title><link rel="stylesheet" href="/style.css"></head>
<body>
<form method="post" action="/login.php">
  <label>Your name <input name="name" id="name" autocomplete="off"></label>
  <button type="submit" id="go">Go</button>
</form>
</body>
</html>
