import os
import signal
import time
import uuid

INSTANCE = uuid.uuid4().hex  # module-level code stamps each init, so a test can tell a fresh one


def handler(event, context):
    action = event.get("action")
    if action == "sleep":
        time.sleep(event["seconds"])
    elif action == "meet":  # arrive, then wait (20 s at most) until every party has arrived
        open(os.path.join(event["dir"], event["name"]), "w").close()
        deadline = time.monotonic() + 20
        while len(os.listdir(event["dir"])) < event["parties"] and time.monotonic() < deadline:
            time.sleep(0.01)
        return {"pid": os.getpid(), "met": len(os.listdir(event["dir"])) >= event["parties"]}
    elif action == "hold":  # until the gate file exists (20 s at most)
        deadline = time.monotonic() + 20
        while not os.path.exists(event["gate"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    elif action == "exit":
        os._exit(event["code"])
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"instance": INSTANCE, "pid": os.getpid()}
