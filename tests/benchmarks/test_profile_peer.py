"""The profile's fold: each perf sample on its innermost Python frame, read from ``perf script`` text
laid out as perf prints it (innermost frame first, a blank line after each sample)."""

from __future__ import annotations

from benchmarks.profile_peer import NO_PYTHON, innermost_python

SCRIPT = """
\tffffffff82065a60 tcp_sendmsg_locked
\t           f838f __GI___libc_write
\t           c007b __pyx_pf_6uvloop_4loop_8UVStream_4write (inlined)
\t     7f0a1b2c py::WebSocketWriter._write_websocket_frame:/venv/aiohttp/_websocket/writer.py
\t     7f0a1b3d py::TextWriter.write_if_ready:/src/bridge/live/aiohttp_internals.py
\t     7f0a1b4e py::CallDriver._twilio_loop:/src/bridge/live/driver.py

\t           5a1f0 _PyEval_EvalFrameDefault
\t     7f0a1c00 py::CallCore.take_media:/src/bridge/core/call.py
\t     7f0a1b4e py::CallDriver._twilio_loop:/src/bridge/live/driver.py

\tffffffff8223df91 do_syscall_64
\t           3b2e1 epoll_wait
\t           9e0aa __pyx_f_6uvloop_4loop_4Loop__run

\t     7f0a1c00 py::CallCore.take_media:/src/bridge/core/call.py
"""


def test_each_sample_goes_to_its_innermost_python_frame() -> None:
    prof = innermost_python(SCRIPT.splitlines())
    assert prof.samples == 4
    assert dict(prof.by_function) == {
        "WebSocketWriter._write_websocket_frame:/venv/aiohttp/_websocket/writer.py": 1,
        "CallCore.take_media:/src/bridge/core/call.py": 2,  # the last sample has no blank line after it
        NO_PYTHON: 1,
    }
    assert prof.by_function[0] == ("CallCore.take_media:/src/bridge/core/call.py", 2)


def test_no_samples() -> None:
    assert innermost_python(["", "  ", ""]).samples == 0
