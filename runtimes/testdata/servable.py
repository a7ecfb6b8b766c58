# A servable for the tests: echoes its input, except for a few commands.
import os, struct, sys, time
inp, out = sys.stdin.buffer, sys.stdout.buffer
def answer(status, payload):
    out.write(struct.pack(">BI", status, len(payload)) + payload)
    out.flush()
while True:
    head = inp.read(5)
    if len(head) < 5:
        break
    kind, n = struct.unpack(">BI", head)
    if n >= 1 << 20:  # a large request: read part of it and die
        inp.read(1000)
        sys.stderr.write("boom: read part of a large request\n")
        sys.stderr.flush()
        sys.exit(1)
    data = inp.read(n)
    marker = os.path.join(os.environ["HOME"], "crashed-once")
    if data == b"crash" or (data == b"crash-once" and not os.path.exists(marker)):
        open(marker, "w").close()
        sys.stderr.write("boom: asked to crash\n")
        sys.stderr.flush()
        sys.exit(1)
    if data == b"error":
        answer(1, b"bad input")
    elif data == b"big":
        answer(0, b"x" * 5000)
    elif data == b"pid":
        answer(0, str(os.getpid()).encode())
    elif data == b"env":
        answer(0, (os.environ.get("FXD_FUNCTION", "") + " " + os.environ.get("GREETING", "")).encode())
    elif data == b"close-stdin":  # stop reading but live on; closed before the answer, so no task can be written in between
        os.close(0)
        answer(0, data)
        time.sleep(100)
    elif data == b"sleep":
        os.system("sleep 100")
    else:
        answer(0, data)
