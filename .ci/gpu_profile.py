"""Where does a paper-preset search step spend its time on a GPU? Variants timed, then one profiled."""
import torch
from torch.profiler import ProfilerActivity, profile

from harness.bench import _batches, _time_steps, our_step
from harness.config import configure
from harness.device import configure_backends

dev = torch.device("cuda")
def variant(label, sets, bench_flag=True):
    experiment = configure("nb201", "darts", "paper", sets)
    cfg = experiment.config
    configure_backends(cfg.precision, dev)
    torch.backends.cudnn.benchmark = bench_flag
    step = our_step(experiment, dev)
    batches = _batches(experiment, dev, 20, seeds=1)
    _time_steps(step, batches[:6], dev)
    t = _time_steps(step, batches, dev)
    print(f"{label:<40} {t*1e3:8.1f} ms/step", flush=True)
    return cfg, step, batches

variant("fp32 channels_last cudnn.benchmark", [])
variant("fp32 contiguous cudnn.benchmark", ["channels_last=false"])
variant("fp32 contiguous no-benchmark", ["channels_last=false"], False)
variant("tf32 contiguous", ["channels_last=false", "precision=tf32"])
cfg, step, batches = variant("fp32 channels_last (profiled)", [])

with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for i in range(0, 6, 2):
        step(batches[i], batches[i + 1])
    torch.cuda.synchronize()
ka = prof.key_averages()
print(ka.table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60))
print(ka.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))
kernels = sum(e.count for e in ka if e.device_type == torch.autograd.DeviceType.CUDA)
print("cuda kernel events per step:", kernels / 3)
