<?php
// The params a script was run with that must not depend on which web server passed
// them (ports, host names and the server's name and version do, and are left out).

declare(strict_types=1);

function server_fields(array $server): array
{
    $names = [
        'REQUEST_METHOD', 'REQUEST_URI', 'QUERY_STRING', 'SCRIPT_NAME', 'SCRIPT_FILENAME',
        'DOCUMENT_ROOT', 'DOCUMENT_URI', 'PHP_SELF', 'PATH_INFO', 'CONTENT_TYPE',
        'CONTENT_LENGTH', 'SERVER_PROTOCOL', 'GATEWAY_INTERFACE', 'REQUEST_SCHEME', 'HTTPS',
        'REDIRECT_STATUS', 'REMOTE_ADDR',
    ];
    $out = [];
    foreach ($names as $name) {
        $out[$name] = $server[$name] ?? null;
    }
    return $out;
}
