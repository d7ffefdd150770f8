"""bench_api.py --diagnose: put on an API server's PYTHONPATH, records its stalls (not loaded otherwise).

A watchdog thread samples every thread's stack each 2 ms; it logs (1) its own lateness (GIL held by C code,
or the process not scheduled), (2) the main thread staying in one non-idle frame for > 15 ms, and gc pauses."""

import gc
import json
import os
import sys
import threading
import time

OUT = os.environ.get("TT_STALL_LOG")
if OUT:
    main_id = threading.main_thread().ident
    lock = threading.Lock()
    f = open(OUT, "a", buffering=1)

    def emit(**rec):
        rec["t"] = time.time()
        with lock:
            f.write(json.dumps(rec) + "\n")

    gc_start = {}

    def gc_cb(phase, info):
        if phase == "start":
            gc_start["t"] = time.perf_counter()
        else:
            d = (time.perf_counter() - gc_start.get("t", time.perf_counter())) * 1000
            if d > 3:
                emit(
                    kind="gc",
                    ms=round(d, 1),
                    gen=info["generation"],
                    collected=info["collected"],
                    thread=threading.current_thread().name,
                )

    gc.callbacks.append(gc_cb)
    IDLE = ("select", "poll", "_run_once", "wait", "sleep")

    def where(frame, n=6):
        out = []
        while frame is not None and len(out) < n:
            c = frame.f_code
            out.append(f"{os.path.basename(c.co_filename)}:{frame.f_lineno}:{c.co_name}")
            frame = frame.f_back
        return out

    def watch():
        last_key, since = None, None
        while True:
            t0 = time.perf_counter()
            time.sleep(0.002)
            now = time.perf_counter()
            late = (now - t0 - 0.002) * 1000
            frames = sys._current_frames()
            if late > 15:
                emit(
                    kind="watchdog_late",
                    ms=round(late, 1),
                    threads={str(k): where(v, 4) for k, v in frames.items() if k != threading.get_ident()},
                )
            mf = frames.get(main_id)
            if mf is None:
                continue
            key = (id(mf), mf.f_lasti, mf.f_code)
            top = mf.f_code.co_name
            # uvloop runs the loop in C under asyncio.runners' run(): that frame is the idle loop too
            idle = top in IDLE or mf.f_code.co_filename.endswith("runners.py")
            if key == last_key and not idle:
                if now - since > 0.015 and not getattr(watch, "logged", False):
                    watch.logged = True
                    emit(kind="main_stuck", ms=round((now - since) * 1000, 1), stack=where(mf, 10))
            else:
                if getattr(watch, "logged", False) and last_key is not None:
                    emit(kind="main_stuck_end", ms=round((now - since) * 1000, 1))
                watch.logged = False
                last_key, since = key, now

    threading.Thread(target=watch, name="stallwatch", daemon=True).start()
