"""The Python side of `bench sdk`: proxmoxer (requests) and proxmox-sdk's async SDK.

Run by the bench binary with the virtualenv's interpreter:

    python sdk_clients.py <client> <config-json>

where <client> is `proxmoxer` or `proxmox-sdk` and the JSON object carries host, port,
token_user, token_name, token_value, n_gets, concurrency, n_creates, vmid_start, repeats and
poll_s. Each scenario runs `repeats` times after a 100-request warm-up.
Prints one JSON object: {"client": ..., "results": [{"scenario", "n_ops", "wall_s": [...]}]}.
Both libraries only build https:// URLs; the scheme is switched to http after construction,
which is what their users do behind a TLS-terminating proxy.
"""

import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor


SCENARIOS = ("sequential GETs", "concurrent GETs", "creates + task waits")


def empty_results(cfg):
    counts = (cfg["n_gets"], cfg["n_gets"], cfg["n_creates"])
    return [{"scenario": name, "n_ops": count, "wall_s": []} for name, count in zip(SCENARIOS, counts)]


def run_proxmoxer(cfg):
    from proxmoxer import ProxmoxAPI
    from proxmoxer.tools import Tasks

    api = ProxmoxAPI(cfg["host"], port=cfg["port"], user=cfg["token_user"],
                     token_name=cfg["token_name"], token_value=cfg["token_value"],
                     verify_ssl=False, timeout=30)
    api._store["base_url"] = "http://{0}:{1}/api2/json".format(cfg["host"], cfg["port"])
    results = empty_results(cfg)
    vmid = cfg["vmid_start"]
    for _ in range(100):
        api.version.get()
    with ThreadPoolExecutor(max_workers=cfg["concurrency"]) as pool:
        for _ in range(cfg["repeats"]):
            started = time.perf_counter()
            for _ in range(cfg["n_gets"]):
                api.version.get()
            results[0]["wall_s"].append(time.perf_counter() - started)

            started = time.perf_counter()
            for _ in pool.map(lambda _: api.version.get(), range(cfg["n_gets"])):
                pass
            results[1]["wall_s"].append(time.perf_counter() - started)

            started = time.perf_counter()
            for _ in range(cfg["n_creates"]):
                upid = api.nodes("pve1").qemu.post(vmid=vmid, name="bench{0}".format(vmid), memory=512)
                vmid += 1
                status = Tasks.blocking_status(api, upid, timeout=30, polling_interval=cfg["poll_s"])
                if not status or status.get("exitstatus") != "OK":
                    raise RuntimeError("task {0} ended with {1}".format(upid, status))
            results[2]["wall_s"].append(time.perf_counter() - started)
    return results


async def run_proxmox_sdk_async(cfg):
    from proxmox_sdk.sdk import ProxmoxSDK, Tasks

    sdk = ProxmoxSDK(host=cfg["host"], port=cfg["port"], user=cfg["token_user"],
                     token_name=cfg["token_name"], token_value=cfg["token_value"],
                     verify_ssl=False, timeout=30)
    backend = sdk._backend
    backend._base_scheme = "http"
    backend._base_url = "http://{0}:{1}".format(cfg["host"], cfg["port"])
    results = empty_results(cfg)
    vmid = cfg["vmid_start"]
    limit = asyncio.Semaphore(cfg["concurrency"])

    async def one_get():
        async with limit:
            await sdk.version.get()

    async with sdk:
        for _ in range(100):
            await sdk.version.get()
        for _ in range(cfg["repeats"]):
            started = time.perf_counter()
            for _ in range(cfg["n_gets"]):
                await sdk.version.get()
            results[0]["wall_s"].append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(one_get() for _ in range(cfg["n_gets"])))
            results[1]["wall_s"].append(time.perf_counter() - started)

            started = time.perf_counter()
            for _ in range(cfg["n_creates"]):
                upid = await sdk.nodes("pve1").qemu.post(vmid=vmid, name="bench{0}".format(vmid), memory=512)
                vmid += 1
                status = await Tasks.wait_for_task(sdk, upid, timeout=30, polling_interval=cfg["poll_s"])
                if status.get("exitstatus") != "OK":
                    raise RuntimeError("task {0} ended with {1}".format(upid, status))
            results[2]["wall_s"].append(time.perf_counter() - started)
    return results


def main():
    client, cfg = sys.argv[1], json.loads(sys.argv[2])
    if client == "proxmoxer":
        results = run_proxmoxer(cfg)
    elif client == "proxmox-sdk":
        results = asyncio.run(run_proxmox_sdk_async(cfg))
    else:
        raise SystemExit("unknown client " + client)
    print(json.dumps({"client": client, "results": results}))


if __name__ == "__main__":
    main()
