"""The researcher's Python kernel in the hub: ipykernel with no TCP socket at all.

Started by the airlock's kernel spec (``srs.hub.airlock.kernel_spec``) as
``python -m srs.hub.kernel -f CONNECTION_FILE``. The server puts the kernel's five channels on
IPC sockets (``KernelManager.transport=ipc``) in the researcher's private runtime folder, but
ipykernel also binds two TCP ports of its own on 127.0.0.1 that any account on the machine can
reach: the IOPub pipe from forked subprocesses, and the debugger (debugpy). Here the pipe is an
IPC socket beside the connection file and the debugger is off.

With ``--srs-own-cgroup`` (the spawner's spec when the network is isolated), before anything
else the kernel moves itself out of its server's cgroup (``.../<account>/server``) into the
sibling ``kernels``, which the airlock's egress table lets send nothing; it exits if it cannot.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

UNIX_SOCKET_PATH_MAX = 107
SERVER_CGROUP = "server"
KERNEL_CGROUP = "kernels"
OWN_CGROUP_FLAG = "--srs-own-cgroup"


def cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, or None."""
    for line in Path(mountinfo).read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        if rest.split(" ", 1)[0] == "cgroup2":
            return Path(fields.split()[4])
    return None


def own_cgroup() -> str:
    """This process's cgroup v2 path (``/srs/srs-ana/server``)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise SystemExit("this kernel is in no cgroup v2; the airlock cannot place it")


def leave_server_cgroup() -> Path:
    """Move this process from its server's cgroup into the sibling ``kernels``; exit if it
    cannot (a kernel left in the server's cgroup could answer the proxy)."""
    mount = cgroup2_mount()
    current = own_cgroup()
    if mount is None or Path(current).name != SERVER_CGROUP:
        raise SystemExit(
            f"the airlock starts kernels from a server's cgroup, not {current!r}; not starting"
        )
    target = mount / current.lstrip("/")
    target = target.parent / KERNEL_CGROUP
    try:
        (target / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:
        raise SystemExit(f"the kernel could not enter its cgroup {target}: {exc}") from exc
    if Path(own_cgroup()).name != KERNEL_CGROUP:
        raise SystemExit(f"the kernel is still in {own_cgroup()}; not starting")
    return target


def pipe_address(runtime_dir: Path, pid: int) -> str:
    """The IOPub pipe's IPC address for the kernel of process ``pid``."""
    path = runtime_dir / f"kernel-{pid}-iopub-pipe"
    if len(os.fsencode(path)) > UNIX_SOCKET_PATH_MAX:
        raise SystemExit(f"the runtime folder {runtime_dir} is too long for the kernel's sockets")
    return f"ipc://{path}"


def _runtime_dir(argv: list[str]) -> Path:
    for flag in ("-f", "--f", "--IPKernelApp.connection_file"):
        if flag in argv[:-1]:
            return Path(argv[argv.index(flag) + 1]).resolve().parent
        for argument in argv:
            if argument.startswith(flag + "="):
                return Path(argument.split("=", 1)[1]).resolve().parent
    return Path(os.environ.get("JUPYTER_RUNTIME_DIR") or Path.home())


def ipc_only(runtime_dir: Path) -> None:
    """Patch ipykernel so that the IOPub pipe is an IPC socket and the debugger never starts."""
    import zmq
    from ipykernel import debugger, iostream
    from zmq.eventloop.zmqstream import ZMQStream

    address = pipe_address(runtime_dir, os.getpid())

    def setup_pipe_in(thread: iostream.IOPubThread) -> None:
        thread._pipe_uuid = os.urandom(16)
        pipe_in = thread.socket.context.socket(zmq.PULL)
        pipe_in.linger = 0
        pipe_in.bind(address)
        thread._pipe_port = address
        thread._pipe_in = ZMQStream(pipe_in, thread.io_loop)
        thread._pipe_in.on_recv(thread._handle_pipe_msg)

    def setup_pipe_out(thread: iostream.IOPubThread):
        context = zmq.Context()
        pipe_out = context.socket(zmq.PUSH)
        pipe_out.linger = 3000
        pipe_out.connect(address)
        return context, pipe_out

    iostream.IOPubThread._setup_pipe_in = setup_pipe_in
    iostream.IOPubThread._setup_pipe_out = setup_pipe_out
    # debugpy listens on a loopback TCP port when a debug session starts.
    debugger._is_debugpy_available = False


def main() -> None:
    """Start the kernel as ``ipykernel_launcher`` would, with every socket on IPC."""
    if OWN_CGROUP_FLAG in sys.argv:
        sys.argv.remove(OWN_CGROUP_FLAG)
        leave_server_cgroup()
    ipc_only(_runtime_dir(sys.argv[1:]))
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
