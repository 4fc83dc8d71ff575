#!/usr/bin/env python3
"""PyTorch reference timings for the networks test_cuda_engine times on the CUDA engine.

RetinaFace-mnet0.25 (biubug6/Pytorch_Retinaface cfg_mnet; lib/graphs/retinaface.ts) at 640x640 and
FaceNet-MobileNetV1 (bubbliiiing/facenet-pytorch; lib/graphs/facenet.ts) at 160x160, random weights,
eval mode, cudnn.benchmark, channels_last, each batch captured once as a CUDA graph
(torch.cuda.CUDAGraph) and replayed: wall clock of replay + synchronize, p50 / p99 of at least 10 runs
(then until 100 runs or 2 s) after 3 warm-ups, as test_cuda_engine measures RunDevice. fp32 rows run
with TF32 off (the engine's fp32 is full fp32); fp16 rows run the model in half precision.

Prints the rows as the GPU timing table prints them (kernel | size | p50 ms | rate), writes JSON with
--json, and with --engine-table (the gpu-timings.md that scripts/gpu/run.sh collects) adds ratio rows:
engine p50 / torch p50 (above 1: the engine is slower).

  python3 bench/pytorch_reference.py [--json out.json] [--engine-table gpu-timings.md]
                                     [--batches 1,8,32,64,128,256] [--networks retinaface,facenet]
"""
import argparse
import json
import math
import re
import sys
import time

BATCHES = (1, 8, 32, 64, 128, 256)
SIZES = {"retinaface": (640, 640), "facenet": (160, 160)}


def build_networks(torch):
    nn = torch.nn
    F = torch.nn.functional

    # ---- RetinaFace, MobileNetV1 x0.25 (Pytorch_Retinaface models/net.py + retinaface.py) ----
    def conv_bn(inp, oup, stride=1, leaky=0.0):
        return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup),
                             nn.LeakyReLU(negative_slope=leaky, inplace=True))

    def conv_bn_no_relu(inp, oup, stride=1):
        return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup))

    def conv_bn1x1(inp, oup, stride=1, leaky=0.0):
        return nn.Sequential(nn.Conv2d(inp, oup, 1, stride, 0, bias=False), nn.BatchNorm2d(oup),
                             nn.LeakyReLU(negative_slope=leaky, inplace=True))

    def conv_dw_leaky(inp, oup, stride, leaky=0.1):
        return nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
            nn.LeakyReLU(negative_slope=leaky, inplace=True),
            nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
            nn.LeakyReLU(negative_slope=leaky, inplace=True))

    class MobileNetV1x025(nn.Module):
        def __init__(self):
            super().__init__()
            self.stage1 = nn.Sequential(conv_bn(3, 8, 2, leaky=0.1), conv_dw_leaky(8, 16, 1), conv_dw_leaky(16, 32, 2),
                                        conv_dw_leaky(32, 32, 1), conv_dw_leaky(32, 64, 2), conv_dw_leaky(64, 64, 1))
            self.stage2 = nn.Sequential(conv_dw_leaky(64, 128, 2), *[conv_dw_leaky(128, 128, 1) for _ in range(5)])
            self.stage3 = nn.Sequential(conv_dw_leaky(128, 256, 2), conv_dw_leaky(256, 256, 1))

        def forward(self, x):
            s1 = self.stage1(x)
            s2 = self.stage2(s1)
            return s1, s2, self.stage3(s2)

    class FPN(nn.Module):
        def __init__(self, in_channels, out_channels=64):
            super().__init__()
            leaky = 0.1 if out_channels <= 64 else 0.0
            self.output1 = conv_bn1x1(in_channels[0], out_channels, leaky=leaky)
            self.output2 = conv_bn1x1(in_channels[1], out_channels, leaky=leaky)
            self.output3 = conv_bn1x1(in_channels[2], out_channels, leaky=leaky)
            self.merge1 = conv_bn(out_channels, out_channels, leaky=leaky)
            self.merge2 = conv_bn(out_channels, out_channels, leaky=leaky)

        def forward(self, features):
            o1, o2, o3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
            o2 = self.merge2(o2 + F.interpolate(o3, size=[o2.size(2), o2.size(3)], mode="nearest"))
            o1 = self.merge1(o1 + F.interpolate(o2, size=[o1.size(2), o1.size(3)], mode="nearest"))
            return [o1, o2, o3]

    class SSH(nn.Module):
        def __init__(self, in_channel, out_channel=64):
            super().__init__()
            leaky = 0.1 if out_channel <= 64 else 0.0
            self.conv3X3 = conv_bn_no_relu(in_channel, out_channel // 2)
            self.conv5X5_1 = conv_bn(in_channel, out_channel // 4, leaky=leaky)
            self.conv5X5_2 = conv_bn_no_relu(out_channel // 4, out_channel // 4)
            self.conv7X7_2 = conv_bn(out_channel // 4, out_channel // 4, leaky=leaky)
            self.conv7x7_3 = conv_bn_no_relu(out_channel // 4, out_channel // 4)

        def forward(self, x):
            c5a = self.conv5X5_1(x)
            out = torch.cat([self.conv3X3(x), self.conv5X5_2(c5a), self.conv7x7_3(self.conv7X7_2(c5a))], dim=1)
            return F.relu(out)

    class Head(nn.Module):
        def __init__(self, per_anchor, in_channels=64, anchors=2):
            super().__init__()
            self.per_anchor = per_anchor
            self.conv1x1 = nn.Conv2d(in_channels, anchors * per_anchor, 1)

        def forward(self, x):
            out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
            return out.view(out.shape[0], -1, self.per_anchor)

    class RetinaFace(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = MobileNetV1x025()
            self.fpn = FPN([64, 128, 256], 64)
            self.ssh1, self.ssh2, self.ssh3 = SSH(64, 64), SSH(64, 64), SSH(64, 64)
            self.ClassHead = nn.ModuleList([Head(2) for _ in range(3)])
            self.BboxHead = nn.ModuleList([Head(4) for _ in range(3)])
            self.LandmarkHead = nn.ModuleList([Head(10) for _ in range(3)])

        def forward(self, x):
            fpn = self.fpn(self.body(x))
            features = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
            loc = torch.cat([h(f) for h, f in zip(self.BboxHead, features)], dim=1)
            conf = torch.cat([h(f) for h, f in zip(self.ClassHead, features)], dim=1)
            landms = torch.cat([h(f) for h, f in zip(self.LandmarkHead, features)], dim=1)
            return loc, F.softmax(conf, dim=-1), landms

    # ---- FaceNet, MobileNetV1 x1.0 (facenet-pytorch nets/mobilenet.py + nets/facenet.py) ----
    def conv_bn6(inp, oup, stride=1):
        return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU6())

    def conv_dw6(inp, oup, stride=1):
        return nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp), nn.ReLU6(),
            nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.ReLU6())

    class MobileNetV1(nn.Module):
        def __init__(self):
            super().__init__()
            self.stage1 = nn.Sequential(conv_bn6(3, 32, 2), conv_dw6(32, 64, 1), conv_dw6(64, 128, 2),
                                        conv_dw6(128, 128, 1), conv_dw6(128, 256, 2), conv_dw6(256, 256, 1))
            self.stage2 = nn.Sequential(conv_dw6(256, 512, 2), *[conv_dw6(512, 512, 1) for _ in range(5)])
            self.stage3 = nn.Sequential(conv_dw6(512, 1024, 2), conv_dw6(1024, 1024, 1))

        def forward(self, x):
            return self.stage3(self.stage2(self.stage1(x)))

    class FaceNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = MobileNetV1()
            self.avg = nn.AdaptiveAvgPool2d((1, 1))
            self.Dropout = nn.Dropout(0.5)
            self.Bottleneck = nn.Linear(1024, 128, bias=False)
            self.last_bn = nn.BatchNorm1d(128, eps=0.001, momentum=0.1, affine=True)

        def forward(self, x):
            x = self.avg(self.backbone(x)).view(x.size(0), -1)
            x = self.last_bn(self.Bottleneck(self.Dropout(x)))
            return F.normalize(x, p=2, dim=1)

    return {"retinaface": RetinaFace, "facenet": FaceNet}


def randomize(torch, model, seed):
    """Random weights of about the scales of lib/graphs/layers.ts (He normals, BN gamma / var in [0.5, 1.5])."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=g)
            elif isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    return model


def time_network(torch, model, batch, size, half):
    device = torch.device("cuda")
    dtype = torch.float16 if half else torch.float32
    x = torch.zeros(batch, 3, size[0], size[1], device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up (cudnn.benchmark picks its algorithms here)
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(x)
        for _ in range(3):
            graph.replay()
        torch.cuda.synchronize()
        ms = []
        start = time.perf_counter()
        while len(ms) < 10 or (len(ms) < 100 and time.perf_counter() - start < 2.0):
            t0 = time.perf_counter()
            graph.replay()
            torch.cuda.synchronize()
            ms.append((time.perf_counter() - t0) * 1e3)
    del graph
    ms.sort()
    p50 = ms[len(ms) // 2]
    p99 = ms[min(len(ms) - 1, math.ceil(len(ms) * 0.99) - 1)]
    return p50, p99


def row(kernel, size, ms, rate):
    return "| %-26s | %-52s | %9.3f | %-22s |" % (kernel, size, ms, rate)


def engine_rows(path):
    """{(network, precision, batch): p50 ms} from the engine rows of a GPU timing table."""
    found = {}
    pattern = re.compile(r"^\|\s*engine (\w+) (fp16|fp32)\s*\|\s*N=(\d+) \d+x\d+\s*\|\s*([0-9.]+)\s*\|")
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = pattern.match(line)
            if m:
                found[(m.group(1), m.group(2), int(m.group(3)))] = float(m.group(4))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--engine-table", help="gpu-timings.md with the engine rows: print ratio rows")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--networks", default="retinaface,facenet")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("pytorch_reference: skipped, python3 cannot import torch")
        return 2
    if not torch.cuda.is_available():
        print("pytorch_reference: skipped, torch sees no CUDA device")
        return 2
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    batches = [int(b) for b in args.batches.split(",") if b]
    networks = build_networks(torch)
    print("torch %s, %s, cuDNN %s" % (torch.__version__, torch.cuda.get_device_name(0), torch.backends.cudnn.version()))
    print("\nTimings (PyTorch reference: CUDA graph replay + synchronize, wall clock p50 of 10-100 runs after 3 warm-ups):")
    print("| %-26s | %-52s | %9s | %-22s |" % ("kernel", "size", "p50 ms", "rate"))
    print("|%s|%s|%s|%s|" % ("-" * 28, "-" * 54, "-" * 11, "-" * 24))
    results = []
    for seed, name in enumerate(n for n in args.networks.split(",") if n):
        size = SIZES[name]
        for half in (False, True):
            precision = "fp16" if half else "fp32"
            model = randomize(torch, networks[name](), seed + 1).eval().cuda()
            model = model.to(memory_format=torch.channels_last)
            if half:
                model = model.half()
            for batch in batches:
                p50, p99 = time_network(torch, model, batch, size, half)
                results.append({"network": name, "precision": precision, "batch": batch, "height": size[0],
                                "width": size[1], "p50_ms": p50, "p99_ms": p99, "images_per_s": batch / p50 * 1e3})
                print(row("torch %s %s" % (name, precision), "N=%d %dx%d" % (batch, size[0], size[1]), p50,
                          "p99 %.3f ms, %.0f img/s" % (p99, batch / p50 * 1e3)), flush=True)
            del model
            torch.cuda.empty_cache()
    if args.engine_table:
        engine = engine_rows(args.engine_table)
        for r in results:
            key = (r["network"], r["precision"], r["batch"])
            if key in engine:
                ratio = engine[key] / r["p50_ms"]
                r["engine_p50_ms"] = engine[key]
                r["engine_over_torch"] = ratio
                print(row("ratio %s %s" % key[:2], "N=%d %dx%d engine/torch p50" % (r["batch"], r["height"], r["width"]),
                          ratio, "engine %.3f ms" % engine[key]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
