"""The original guide's server design, re-created for the side-by-side bench row.

asyncio + websockets, one `send` per client in a loop (as the guide's
broadcast_command does), speaking warden's protocol 1 so the same load
generator drives it. Terminal command responses go to a journal
(journal.jsonl, one fsync per batch of responses that arrived together)
before their `command_ack`. Not part of warden; bench only, loopback only.

    python server.py --data-dir DIR --listen 127.0.0.1:0 [--tls-cert PEM --tls-key PEM]

Tokens: DIR/loadgen-tokens.txt, lines "<agent id> <token>" (written by loadgen).
Operator lines on stdin: `broadcast <command> [target]`, `send <agent> <command> [target]`, `quit`.
"""
import argparse
import asyncio
import hmac
import json
import os
import ssl
import sys
import time

import websockets

clients = {}  # agent id -> websocket
tokens = {}  # token -> agent id
journal = None
pending = []  # (websocket, command id) waiting for the journal's fsync
flush_scheduled = False
next_id = 0


def now_ms():
    return int(time.time() * 1000)


def flush_journal():
    """Group commit: one write + fsync for every response queued meanwhile."""
    global flush_scheduled, pending
    flush_scheduled = False
    batch, pending = pending, []
    journal.write("".join(line for _, _, line in batch))
    journal.flush()
    os.fsync(journal.fileno())
    for ws, cid, _ in batch:
        asyncio.ensure_future(send(ws, "command_ack", {"id": cid}))


async def send(ws, kind, data):
    try:
        await ws.send(json.dumps({"type": kind, "data": data}))
    except websockets.ConnectionClosed:
        pass


async def handle(ws):
    global flush_scheduled
    header = ws.request.headers.get("Authorization", "")
    agent = None
    for token, agent_id in tokens.items():
        if hmac.compare_digest(header, "Bearer " + token):
            agent = agent_id
    if agent is None or ws.request.path != "/agent":
        await ws.close(1008, "unauthorized")
        return
    try:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if hello.get("type") != "hello" or hello["data"].get("agent_id") != agent:
            await ws.close(1008, "bad hello")
            return
        clients[agent] = ws
        await send(ws, "welcome", {"agent_id": agent, "server_version": "python",
                                   "protocol": 1, "heartbeat_s": 15})
        async for text in ws:
            msg = json.loads(text)
            kind, data = msg.get("type"), msg.get("data") or {}
            if kind == "stats":
                await send(ws, "stats_ack", {"timestamp": data.get("timestamp")})
            elif kind == "ping":
                await send(ws, "pong", {"timestamp": data.get("timestamp")})
            elif kind == "command_response" and data.get("status") in ("completed", "failed"):
                line = json.dumps({"agent": agent, "response": data}) + "\n"
                pending.append((ws, data.get("id"), line))
                if not flush_scheduled:
                    flush_scheduled = True
                    asyncio.get_running_loop().call_soon(flush_journal)
    except (websockets.ConnectionClosed, asyncio.TimeoutError, ValueError, KeyError):
        pass
    finally:
        if clients.get(agent) is ws:
            del clients[agent]


async def send_command(agent, command, target):
    global next_id
    ws = clients.get(agent)
    if ws is None:
        print(f"{agent} is not connected", flush=True)
        return
    next_id += 1
    await send(ws, "command", {"id": f"cmd-{next_id}", "command": command, "target": target,
                               "params": {}, "timestamp": now_ms()})


async def operator(stop):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return  # end of input does not stop the server
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            stop.set_result(None)
            return
        if words[0] == "broadcast" and len(words) >= 2:
            target = words[2] if len(words) > 2 else "all"
            for agent in list(clients):  # one send per client, as the guide does
                await send_command(agent, words[1], target)
        elif words[0] == "send" and len(words) >= 3:
            await send_command(words[1], words[2], words[3] if len(words) > 3 else "all")


async def main():
    global journal
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", required=True)
    p.add_argument("--listen", default="127.0.0.1:7443")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    a = p.parse_args()
    with open(os.path.join(a.data_dir, "loadgen-tokens.txt")) as f:
        for line in f:
            agent_id, token = line.split()
            tokens[token] = agent_id
    journal = open(os.path.join(a.data_dir, "journal.jsonl"), "a")
    context = None
    if a.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(a.tls_cert, a.tls_key)
    host, port = a.listen.rsplit(":", 1)
    stop = asyncio.get_running_loop().create_future()
    async with websockets.serve(handle, host, int(port), ssl=context, max_size=1 << 20,
                                ping_interval=None, backlog=1024) as server:
        bound = server.sockets[0].getsockname()
        print(f"listening on {bound[0]}:{bound[1]}", flush=True)
        asyncio.ensure_future(operator(stop))
        await stop


if __name__ == "__main__":
    asyncio.run(main())
