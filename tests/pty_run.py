#!/usr/bin/env python3
"""Runs a command in a pseudo-terminal, waits for `expect` on screen, types `keys`, and
exits 0 only if the command then exits by itself within the timeout.
usage: pty_run.py EXPECT KEYS TIMEOUT -- CMD...
"""
import fcntl, os, pty, select, struct, sys, termios, time

expect, keys, timeout = sys.argv[1].encode(), sys.argv[2].encode(), float(sys.argv[3])
cmd = sys.argv[sys.argv.index("--") + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm-256color"
    os.execvp(cmd[0], cmd)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 140, 0, 0))
screen, deadline, sent = b"", time.time() + timeout, False
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        screen += chunk
    if not sent and expect in screen:
        os.write(fd, keys)
        sent = True
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.stdout.write("exited %d, saw expect: %s\n" % (os.waitstatus_to_exitcode(status), sent))
        sys.exit(0 if sent and os.waitstatus_to_exitcode(status) == 0 else 1)
os.kill(pid, 9)
sys.stdout.write("timeout; saw expect: %s; screen tail: %r\n" % (sent, screen[-400:]))
sys.exit(1)
