"""Runs btrfs-dio-trace.service's commands the way systemd would, where systemd is
not PID 1 (tests/integration/test_service.sh): the unit's Environment= and
EnvironmentFile= (the file overrides), ExecStartPre= / ExecStart= /
ExecStopPost= with systemd's variable expansion (${VAR} one word, $VAR split at
spaces), CapabilityBoundingSet= and NoNewPrivileges= applied with setpriv, a
notify socket (NOTIFY_SOCKET, WATCHDOG_USEC) and the native journal protocol on
/run/systemd/journal/socket with stdout as a journal stream (JOURNAL_STREAM).
It must run in a private mount namespace with a tmpfs on /run/systemd (the test
does `unshare -m`): it binds the journal socket there. What it does not
emulate is said in docs/deployment.md (cgroups, the mount-namespace sandboxing
directives, restart timing)."""
import os
import re
import shlex
import socket
import struct
import subprocess
import threading
import time


def parse_unit(path):
    """[Service] settings: name -> list of values (in order)."""
    out, section = {}, None
    for raw in open(path):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def parse_env_assignments(text):
    env = {}
    for tok in shlex.split(text):
        if "=" in tok:
            k, v = tok.split("=", 1)
            env[k] = v
    return env


def parse_env_file(path):
    env = {}
    for raw in open(path):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        k, v = line.split("=", 1)
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        env[k.strip()] = v
    return env


def expand(cmdline, env):
    """systemd's Exec= expansion: ${VAR} is one word, a word that is exactly $VAR is split."""
    words = []
    for w in shlex.split(cmdline):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            words += env.get(m.group(1), "").split()
        else:
            words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda x: env.get(x.group(1), ""), w))
    return words


class Journal:
    """A journald stand-in: entries sent with the native protocol, as dicts."""

    def __init__(self, path="/run/systemd/journal/socket"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.entries, self.errors = [], []
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def decode(data):
        fields, i = {}, 0
        while i < len(data):
            nl = data.index(b"\n", i)
            line = data[i:nl]
            if b"=" in line:
                k, v = line.split(b"=", 1)
                fields[k.decode()] = v.decode()
                i = nl + 1
            else:  # binary-safe form: NAME\n<le64 size><value>\n
                size = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
                fields[line.decode()] = data[nl + 9:nl + 9 + size].decode()
                i = nl + 9 + size + 1
        return fields

    def _run(self):
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 1 << 20, 4)
                if fds:  # a large entry comes as a sealed memfd
                    with os.fdopen(fds[0], "rb") as f:
                        data = f.read()
                self.entries.append(self.decode(data))
            except Exception as e:  # noqa: BLE001 - recorded, the test reports it
                self.errors.append(repr(e))


class Notify:
    """The service manager's notify socket: every datagram, with its arrival time."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []  # (monotonic time, {key: value})
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            data = self.sock.recv(65536).decode()
            kv = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            self.messages.append((time.monotonic(), kv))

    def first(self, key, value=None, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, kv in list(self.messages):
                if key in kv and (value is None or kv[key] == value):
                    return t, kv
            time.sleep(0.05)
        return None, None


class Service:
    """The unit's commands, run as systemd runs them."""

    def __init__(self, unit_path, env_file, notify_path, workdir, overrides=None, watchdog_usec=0):
        self.unit = parse_unit(unit_path)
        env = {}
        for e in self.unit.get("Environment", []):
            env.update(parse_env_assignments(e))
        env.update(parse_env_file(env_file))  # EnvironmentFile= overrides Environment=
        env.update(overrides or {})
        self.env = env
        self.notify_path = notify_path
        self.workdir = workdir
        self.watchdog_usec = watchdog_usec
        caps = " ".join(self.unit.get("CapabilityBoundingSet", [])).split()
        self.caps = ",".join("+" + c[4:].lower() for c in caps)
        self.nnp = self.unit.get("NoNewPrivileges", ["no"])[-1] == "yes"
        self.main = None
        self.out_r = None

    def argv(self, setting):
        cmd = self.unit[setting][0]
        return expand(cmd, self.env)

    def _wrap(self, argv):
        w = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", f"--bounding-set=-all,{self.caps}"]
        if self.nnp:
            w.append("--no-new-privs")
        return w + ["--"] + argv

    def run(self, setting, timeout=120):
        """A one-shot command (ExecStartPre=, ExecStopPost=): its exit status and stderr."""
        p = subprocess.run(self._wrap(self.argv(setting)), env=self._env(), cwd=self.workdir,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)
        return p.returncode, p.stdout, p.stderr

    def _env(self, journal_stream=None):
        e = dict(os.environ)
        e.update(self.env)
        e["NOTIFY_SOCKET"] = self.notify_path
        if self.watchdog_usec:
            e["WATCHDOG_USEC"] = str(self.watchdog_usec)
        if journal_stream:
            e["JOURNAL_STREAM"] = journal_stream
        return e

    def start(self, stdout_path, stderr_path):
        """ExecStart= in the background, stdout a journal stream (a pipe we drain to a file)."""
        r, w = os.pipe()
        st = os.fstat(w)
        self.out_file = open(stdout_path, "wb")
        self.err_file = open(stderr_path, "wb")
        self.main = subprocess.Popen(self._wrap(self.argv("ExecStart")), env=self._env(f"{st.st_dev}:{st.st_ino}"),
                                     cwd=self.workdir, stdout=w, stderr=self.err_file, pass_fds=())
        os.close(w)
        self.out_r = r

        def drain():
            while True:
                b = os.read(r, 65536)
                if not b:
                    break
                self.out_file.write(b)
                self.out_file.flush()

        self.drainer = threading.Thread(target=drain, daemon=True)
        self.drainer.start()
        return self.main

    def tracer_pid(self):
        """setpriv execs the command: the main process is the tracer itself."""
        return self.main.pid

    def stop(self, sig=15, timeout=30):
        self.main.send_signal(sig)
        rc = self.main.wait(timeout)
        self.drainer.join(5)
        self.out_file.close()
        self.err_file.close()
        return rc
