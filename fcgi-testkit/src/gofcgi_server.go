// Written by fcgi-testkit: Go's net/http/fcgi serving the test routes. See the
// documentation of fcgi_testkit::gofcgi.
//
// Usage: gofcgi_server SOCKET DIR
//
// Serves fcgi.Serve on the unix socket SOCKET. Exits, removing DIR, when its standard
// input reaches end-of-file.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"strconv"
	"strings"
	"time"
)

// The test process holds the other end of standard input: its close (drop, exit, kill)
// stops the server.
func watchStdin(dir string) {
	io.Copy(io.Discard, os.Stdin)
	os.RemoveAll(dir)
	os.Exit(0)
}

// number is the query parameter name as a number; 0 when missing or malformed.
func number(r *http.Request, name string) uint64 {
	n, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// routeOf is the last segment of the request path, without its extension.
func routeOf(r *http.Request) string {
	path := r.URL.Path
	last := path[strings.LastIndex(path, "/")+1:]
	if dot := strings.Index(last, "."); dot >= 0 {
		last = last[:dot]
	}
	return last
}

// largeBody writes total bytes of the kit's large body: line L is L in 15 lower-case
// hex digits and a newline, in 64 KiB pieces.
func largeBody(w io.Writer, total uint64) {
	piece := make([]byte, 0, 65536)
	line := uint64(0)
	for sent := uint64(0); sent < total; {
		size := total - sent
		if size > 65536 {
			size = 65536
		}
		piece = piece[:0]
		for uint64(len(piece)) < size {
			piece = append(piece, fmt.Sprintf("%015x\n", line)...)
			line++
		}
		if _, err := w.Write(piece[:size]); err != nil {
			return
		}
		sent += size
	}
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch routeOf(r) {
	case "hello":
		h.Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello, World!")
	case "echo":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.Set("Content-Type", "application/octet-stream")
		h.Set("X-Body-Length", strconv.Itoa(len(body)))
		w.Write(body)
	case "cookies":
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		h.Add("Set-Cookie", "c=3")
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "not here")
	case "stderr":
		// An http.Handler has no FastCGI STDERR: these lines go to the process's log.
		h.Set("Content-Type", "text/plain")
		fmt.Fprintln(os.Stderr, "first message")
		io.WriteString(w, "one\n")
		w.(http.Flusher).Flush()
		fmt.Fprintln(os.Stderr, "second message")
		io.WriteString(w, "two\n")
	case "large":
		total := number(r, "bytes")
		h.Set("Content-Type", "application/octet-stream")
		h.Set("X-Body-Length", strconv.FormatUint(total, 10))
		largeBody(w, total)
	case "sleep":
		ms := number(r, "ms")
		time.Sleep(time.Duration(ms) * time.Millisecond)
		h.Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "slept %d", ms)
	case "status":
		code := number(r, "code")
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(int(code))
		fmt.Fprintf(w, "status %d", code)
	default:
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "not found")
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gofcgi_server SOCKET DIR")
		os.Exit(2)
	}
	socket, dir := os.Args[1], os.Args[2]
	go watchStdin(dir)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(socket, 0o666)
	fmt.Printf("fcgi-testkit: Go net/http/fcgi serving on %s\n", socket)
	if err := fcgi.Serve(listener, http.HandlerFunc(serve)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
