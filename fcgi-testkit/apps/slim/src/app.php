<?php
// A small Slim 3 application, the framework test's front-controller app (see README.md).
// Every route answers exact, deterministic bytes: the test compares them between nginx
// and the gateway, and against the values written here.

declare(strict_types=1);

use Psr\Http\Message\ResponseInterface as Response;
use Psr\Http\Message\ServerRequestInterface as Request;

// Debian's php-slim installs Slim 3 and its dependencies (pimple, fast-route, the PSR
// interfaces) under /usr/share/php, which is on PHP's default include_path.
if ((include_once 'Slim/autoload.php') === false) {
    header('Status: 500 Internal Server Error');
    header('Content-Type: text/plain; charset=utf-8');
    echo "Slim is not installed: apt-get install -y php-slim\n";
    exit;
}

require_once __DIR__ . '/server_fields.php';

/** A text/plain response with `$text` as its body. */
function plain(Response $response, string $text, int $status = 200): Response
{
    $response->getBody()->write($text);
    return $response
        ->withStatus($status)
        ->withHeader('Content-Type', 'text/plain; charset=utf-8');
}

/** The catalogue the JSON API lists; fixed, so that answers are deterministic. */
const ITEMS = [
    ['id' => 1, 'name' => 'kettle', 'price' => 24.5],
    ['id' => 2, 'name' => 'teapot', 'price' => 18],
];

$app = new Slim\App([
    'settings' => [
        'displayErrorDetails' => false,
        'addContentLengthHeader' => true,
    ],
    // The application's own 404, for every path no route matches (static files that do
    // not exist included: the web server hands those to index.php too).
    'notFoundHandler' => function () {
        return function (Request $request, Response $response): Response {
            $path = '/' . ltrim($request->getUri()->getPath(), '/');
            return plain($response, "No route for {$request->getMethod()} {$path}\n", 404);
        };
    },
    'notAllowedHandler' => function () {
        return function (Request $request, Response $response, array $methods): Response {
            return plain($response, 'Use ' . implode(' or ', $methods) . "\n", 405)
                ->withHeader('Allow', implode(', ', $methods));
        };
    },
]);

// The home page (default Content-Type of Slim's response: text/html; charset=UTF-8).
$app->get('/', function (Request $request, Response $response): Response {
    $response->getBody()->write(
        "<!doctype html>\n<title>Slim behind FastCGI</title>\n"
        . "<link rel=\"stylesheet\" href=\"/css/site.css\">\n"
        . "<h1>Home</h1>\n<p><a href=\"/hello/World\">Say hello</a></p>\n"
    );
    return $response;
});

// A pretty URL with a route parameter. Slim 3 matches the raw path: the name arrives
// still %-encoded.
$app->get('/hello/{name}', function (Request $request, Response $response, array $args): Response {
    return plain($response, 'Hello, ' . rawurldecode($args['name']) . '!');
});

// Query parameters ($_GET, from QUERY_STRING) and what Slim made of the URL.
$app->get('/search', function (Request $request, Response $response): Response {
    $uri = $request->getUri();
    return $response->withJson([
        'query' => $request->getQueryParams(),
        'path' => $uri->getPath(),
        'basePath' => $uri->getBasePath(),
    ], null, JSON_UNESCAPED_SLASHES);
});

// The params the server passed, as the front controller sees them.
$app->map(['GET', 'POST'], '/server', function (Request $request, Response $response): Response {
    return $response->withJson(server_fields($request->getServerParams()), null, JSON_UNESCAPED_SLASHES);
});

// A form POST (application/x-www-form-urlencoded): echoes the fields, one per line.
$app->post('/form', function (Request $request, Response $response): Response {
    $lines = '';
    foreach ((array) $request->getParsedBody() as $name => $value) {
        $lines .= $name . '=' . (is_array($value) ? implode(',', $value) : $value) . "\n";
    }
    return plain($response, $lines);
});

// A JSON API: the list, one item, and a POST of a JSON body that creates one.
$app->get('/api/items', function (Request $request, Response $response): Response {
    return $response->withJson(['items' => ITEMS]);
});

$app->get('/api/items/{id:[0-9]+}', function (Request $request, Response $response, array $args): Response {
    foreach (ITEMS as $item) {
        if ($item['id'] === (int) $args['id']) {
            return $response->withJson($item);
        }
    }
    return $response->withJson(['error' => 'no such item'], 404);
});

$app->post('/api/items', function (Request $request, Response $response): Response {
    $body = $request->getParsedBody();
    if (!is_array($body) || !is_string($body['name'] ?? null) || !is_numeric($body['price'] ?? null)) {
        return $response->withJson(['error' => 'expected {"name": string, "price": number}'], 400);
    }
    $id = count(ITEMS) + 1;
    return $response
        ->withJson(['id' => $id, 'name' => $body['name'], 'price' => $body['price'] + 0], 201)
        ->withHeader('Location', "/api/items/$id");
});

// A file upload (multipart/form-data, field "file"): its name, size and sha256, and the
// other fields of the form.
$app->post('/upload', function (Request $request, Response $response): Response {
    $file = $request->getUploadedFiles()['file'] ?? null;
    if ($file === null || $file->getError() !== UPLOAD_ERR_OK) {
        $error = $file === null ? 'no file' : 'upload error ' . $file->getError();
        return $response->withJson(['error' => $error], 400);
    }
    return $response->withJson([
        'name' => $file->getClientFilename(),
        'type' => $file->getClientMediaType(),
        'size' => $file->getSize(),
        'sha256' => hash('sha256', (string) $file->getStream()),
        'fields' => $request->getParsedBody(),
    ], null, JSON_UNESCAPED_SLASHES);
});

// Who is asking: the Authorization header (HTTP_AUTHORIZATION) and the cookies sent.
$app->get('/api/me', function (Request $request, Response $response): Response {
    return $response->withJson([
        'authorization' => $request->getHeaderLine('Authorization'),
        'cookies' => $request->getCookieParams(),
    ], null, JSON_UNESCAPED_SLASHES);
});

// A redirect to a relative URL (301, as for a moved page).
$app->get('/old-hello', function (Request $request, Response $response): Response {
    return $response->withRedirect('/hello/Redirected', 301);
});

// Two cookies: one with PHP's setcookie(), one through Slim's response; both must arrive,
// in this order.
$app->get('/cookies', function (Request $request, Response $response): Response {
    setcookie('theme', 'dark', ['path' => '/', 'samesite' => 'Lax']);
    return plain($response, "two cookies\n")
        ->withAddedHeader('Set-Cookie', 'session=abc123; Path=/; HttpOnly');
});

return $app;
