#!/usr/bin/env python3
"""Reads a TensorBoard log dir with TensorBoard's own reading code and prints what it got as JSON.

Used by the loggers' interop test (packages/loggers/src/interop.test.ts) in the venv made by
scripts/tensorboard-venv.sh. Both of TensorBoard's readers are used, through the same data-provider
API that the web UI's plugins use:

  python   the Python loader: plugin_event_multiplexer (every point kept) + MultiplexerDataProvider
  rust     the Rust data server (tensorboard-data-server, the default `--load_fast=auto` reader),
           started as a subprocess and read through its gRPC data provider

and on each, the hparams plugin's own backend (get_experiment and list_session_groups handlers).

    read_tensorboard.py LOGDIR [--reader python|rust|both] [--live]

With --live, both readers stay up as a TensorBoard left running does: the script prints "ready"
once they have loaded LOGDIR, then answers each line on stdin: "reload" (the readers look at the
files again; prints "reloaded") and "read" (prints the output below for the readers' current state,
then exits).

Output: {"tensorboard_version": ..., "readers": {"python": {...}, "rust": {...}}}; per reader:
runs -> {scalars: {tag: [[step, value, wall_time]]}, histograms: {tag: [{step, buckets}]},
text: {tag: [{step, shape, value}]}, images: {tag: [{step, width, height, pngs: [sha256]}]}},
hparams -> {experiment, session_groups} as the plugin answers them (json_format, field names kept).
NaN and infinities are written as the strings "NaN", "Infinity", "-Infinity".
"""

import argparse
import hashlib
import json
import logging
import math
import sys
import time

import numpy as np
from google.protobuf import json_format

import tensorboard
from tensorboard import context as tb_context
from tensorboard.backend.event_processing import data_provider as mux_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import backend_context
from tensorboard.plugins.hparams import get_experiment
from tensorboard.plugins.hparams import list_session_groups

EXPERIMENT = ""
KEEP_ALL = 10**9
PLUGINS = ("scalars", "histograms", "images", "text", "hparams")


def number(x):
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def python_provider(logdir):
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance={"tensors": 0},
        tensor_size_guidance={p: 0 for p in PLUGINS},
        purge_orphaned_data=True,
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return mux_provider.MultiplexerDataProvider(multiplexer, logdir), multiplexer


def rust_provider(logdir):
    from tensorboard.data import server_ingester
    from tensorboard.util import grpc_util

    ingester = server_ingester.SubprocessServerDataIngester(
        server_binary=server_ingester.get_server_binary(),
        logdir=logdir,
        reload_interval=1,
        channel_creds_type=grpc_util.ChannelCredsType.LOCAL,
        samples_per_plugin={p: 0 for p in PLUGINS},
    )
    ingester.start()
    return ingester.data_provider, ingester


def read_runs(provider):
    ctx = tb_context.RequestContext()
    runs = {}

    def run_entry(run):
        return runs.setdefault(run, {"scalars": {}, "histograms": {}, "text": {}, "images": {}})

    scalars = provider.read_scalars(ctx, experiment_id=EXPERIMENT, plugin_name="scalars", downsample=KEEP_ALL)
    for run, tags in scalars.items():
        for tag, data in tags.items():
            run_entry(run)["scalars"][tag] = [[d.step, number(d.value), d.wall_time] for d in data]

    histograms = provider.read_tensors(ctx, experiment_id=EXPERIMENT, plugin_name="histograms", downsample=KEEP_ALL)
    for run, tags in histograms.items():
        for tag, data in tags.items():
            run_entry(run)["histograms"][tag] = [
                {"step": d.step, "buckets": [[number(x) for x in row] for row in np.asarray(d.numpy).tolist()]} for d in data
            ]

    text = provider.read_tensors(ctx, experiment_id=EXPERIMENT, plugin_name="text", downsample=KEEP_ALL)
    for run, tags in text.items():
        for tag, data in tags.items():
            entries = []
            for d in data:
                arr = np.asarray(d.numpy)
                value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(arr).tolist() if arr.size else []
                entries.append({"step": d.step, "shape": list(arr.shape), "value": value})
            run_entry(run)["text"][tag] = entries

    images = provider.read_blob_sequences(ctx, experiment_id=EXPERIMENT, plugin_name="images", downsample=KEEP_ALL)
    for run, tags in images.items():
        for tag, data in tags.items():
            entries = []
            for d in data:
                blobs = [provider.read_blob(ctx, blob_key=ref.blob_key) for ref in d.values]
                entries.append(
                    {
                        "step": d.step,
                        "width": blobs[0].decode("ascii"),
                        "height": blobs[1].decode("ascii"),
                        "pngs": [hashlib.sha256(b).hexdigest() for b in blobs[2:]],
                    }
                )
            run_entry(run)["images"][tag] = entries
    return runs


def read_hparams(provider, logdir):
    ctx = tb_context.RequestContext()
    context = backend_context.Context(base_plugin.TBContext(data_provider=provider, logdir=logdir))
    experiment = get_experiment.Handler(ctx, context, EXPERIMENT, api_pb2.GetExperimentRequest()).run()
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0,
        slice_size=1000,
        allowed_statuses=[
            api_pb2.STATUS_UNKNOWN,
            api_pb2.STATUS_SUCCESS,
            api_pb2.STATUS_FAILURE,
            api_pb2.STATUS_RUNNING,
        ],
    )
    groups = list_session_groups.Handler(ctx, context, EXPERIMENT, request).run()
    as_dict = lambda m: json_format.MessageToDict(m, preserving_proto_field_name=True)
    return {"experiment": as_dict(experiment), "session_groups": as_dict(groups)}


def read(provider, logdir):
    return {"runs": read_runs(provider), "hparams": read_hparams(provider, logdir)}


def read_rust(logdir, provider=None):
    """The data server loads in the background: read until two reads a moment apart agree."""
    if provider is None:
        provider, _ = rust_provider(logdir)
    previous = None
    deadline = time.time() + 30
    while True:
        current = read(provider, logdir)
        if current == previous and current["runs"]:
            return current
        if time.time() > deadline:
            return current
        previous = current
        time.sleep(1.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir")
    parser.add_argument("--reader", choices=["python", "rust", "both"], default="both")
    parser.add_argument("--live", action="store_true", help="keep the readers up and answer reload/read on stdin")
    args = parser.parse_args()
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    out = {"tensorboard_version": tensorboard.__version__, "readers": {}}
    if args.live:
        python, multiplexer = python_provider(args.logdir)
        rust, _ = rust_provider(args.logdir)
        read_rust(args.logdir, rust)
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() == "reload":
                multiplexer.Reload()
                time.sleep(2.5)  # the data server looks at the files every second
                read_rust(args.logdir, rust)
                print("reloaded", flush=True)
            elif line.strip() == "read":
                out["readers"] = {"python": read(python, args.logdir), "rust": read_rust(args.logdir, rust)}
                break
        json.dump(out, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
        return
    if args.reader in ("python", "both"):
        provider, _ = python_provider(args.logdir)
        out["readers"]["python"] = read(provider, args.logdir)
    if args.reader in ("rust", "both"):
        out["readers"]["rust"] = read_rust(args.logdir)
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
