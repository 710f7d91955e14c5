#!/usr/bin/env python3
# How long after its embargo time an embargoed article's CREATED event reaches a live feed, under
# the system clock: a server on a fresh data directory, one grpcurl feed from now, then RUNS
# articles (the fixture with a new uri each) embargoed two seconds ahead, one at a time.
# Usage: bench/embargo_release.py KHABAR_BIN GRPCURL FIXTURE RUNS
# e.g.   bench/embargo_release.py target/release/khabar "$(command -v grpcurl)" \
#            tests/fixtures/seed-article-v2.ingest.json 20
import datetime, json, os, signal, socket, subprocess, sys, tempfile, threading, time
khabar, grpcurl, fixture, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = tempfile.mkdtemp(prefix="khabar-release-")
port = 56000 + os.getpid() % 1000
server = subprocess.Popen([khabar, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data, "--log", "warn"])
addr = f"127.0.0.1:{port}"
for _ in range(100):  # up to 10 s for the server to listen
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
        break
    except OSError:
        time.sleep(0.1)
feed = subprocess.Popen([grpcurl, "-plaintext", "-d", '{"fromNow":true}', addr, "khabar.v1.FeedService/Subscribe"],
                        stdout=subprocess.PIPE, text=True)
seen = {}
def read():
    buf = ""
    for line in feed.stdout:
        buf += line
        if line.startswith("}"):
            try:
                ev = json.loads(buf)
                if ev.get("kind") == "EVENT_KIND_CREATED":
                    seen[ev["article"]["uri"]] = time.time()
            except Exception:
                pass
            buf = ""
threading.Thread(target=read, daemon=True).start()
time.sleep(1)
req = json.load(open(fixture))
lat = []
for i in range(runs):
    until = time.time() + 2.0
    stamp = datetime.datetime.fromtimestamp(until, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    req["article"]["embargoed"] = stamp
    req["article"]["uri"] = f"https://alkhabar.example/embargo/{i}"
    out = subprocess.run([grpcurl, "-plaintext", "-d", json.dumps(req), addr, "khabar.v1.IngestService/Ingest"],
                         capture_output=True, text=True, timeout=20)
    assert "INGEST_OUTCOME_HELD" in out.stdout, out.stdout + out.stderr
    deadline = time.time() + 10
    while req["article"]["uri"] not in seen and time.time() < deadline:
        time.sleep(0.01)
    got = seen.get(req["article"]["uri"])
    lat.append(None if got is None else got - until)
feed.kill(); server.send_signal(signal.SIGTERM); server.wait(timeout=20)
subprocess.run(["rm", "-rf", data])
ok = sorted(l for l in lat if l is not None)
print(f"release: runs={runs} delivered={len(ok)} min={ok[0]*1000:.0f}ms median={ok[len(ok)//2]*1000:.0f}ms max={ok[-1]*1000:.0f}ms")
