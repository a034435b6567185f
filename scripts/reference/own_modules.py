"""The project's own PyTorch reference modules, for what mmaction2 cannot build: mmcv's NonLocal3d in
'concatenation' mode feeds a 4-D tensor to a Conv3d and cannot run in 3D (here the pairwise
features get a singleton time axis), and mmaction2 has no 3D GCNet context block
(context_block.py). ConvModule, NonLocal3d and I3DHead follow mmcv's and mmaction2's modules, with
their state_dict keys; make_model_fixtures.py and make_layer_fixtures.py check them against
mmaction2's own (mmaction2_models.py) wherever mmaction2 can run, before writing any fixture.
Needs only torch."""
import torch, torch.nn as nn, torch.nn.functional as F


class ConvModule(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0, norm=True, act=True, bias=None):
        super().__init__()
        if bias is None: bias = not norm
        self.conv = nn.Conv3d(cin, cout, k, stride=stride, padding=padding, bias=bias)
        self.bn = nn.BatchNorm3d(cout) if norm else None
        self.act = act
    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None: x = self.bn(x)
        return F.relu(x) if self.act else x

class NonLocal3d(nn.Module):
    def __init__(self, c, mode="embedded_gaussian", use_scale=False, sub_sample=True):
        super().__init__()
        self.c, self.inter, self.mode, self.use_scale, self.sub_sample = c, max(c // 2, 1), mode, use_scale, sub_sample
        self.g = ConvModule(c, self.inter, 1, norm=False, act=False)
        self.conv_out = ConvModule(self.inter, c, 1, norm=True, act=False)
        if mode != "gaussian":
            self.theta = ConvModule(c, self.inter, 1, norm=False, act=False)
            self.phi = ConvModule(c, self.inter, 1, norm=False, act=False)
        if mode == "concatenation":
            self.concat_project = ConvModule(self.inter * 2, 1, 1, norm=False, act=True, bias=False)
        pool = nn.MaxPool3d((1, 2, 2))
        if sub_sample:
            self.g = nn.Sequential(self.g, pool)
            self.phi = nn.Sequential(self.phi, pool) if mode != "gaussian" else pool
        for m in self.modules():
            if isinstance(m, nn.Conv3d): nn.init.normal_(m.weight, std=0.01); m.bias is not None and nn.init.zeros_(m.bias)
        nn.init.zeros_(self.conv_out.bn.weight); nn.init.zeros_(self.conv_out.bn.bias)
    def forward(self, x):
        n = x.size(0)
        g_x = self.g(x).view(n, self.inter, -1).permute(0, 2, 1)
        if self.mode == "gaussian":
            th = x.view(n, self.c, -1).permute(0, 2, 1)
            ph = (self.phi(x) if self.sub_sample else x).view(n, self.c, -1)
            pw = (th @ ph).softmax(-1)
        elif self.mode == "concatenation":
            th = self.theta(x).view(n, self.inter, -1, 1); ph = self.phi(x).view(n, self.inter, 1, -1)
            h, w = th.size(2), ph.size(3)
            pw = self.concat_project(torch.cat([th.repeat(1, 1, 1, w), ph.repeat(1, 1, h, 1)], 1).unsqueeze(2)).view(n, h, w) / w
        else:
            th = self.theta(x).view(n, self.inter, -1).permute(0, 2, 1); ph = self.phi(x).view(n, self.inter, -1)
            pw = th @ ph
            if self.mode == "embedded_gaussian":
                if self.use_scale: pw = pw / self.inter ** 0.5
                pw = pw.softmax(-1)
            else:
                pw = pw / pw.shape[-1]
        y = (pw @ g_x).permute(0, 2, 1).reshape(n, self.inter, *x.shape[2:])
        return x + self.conv_out(y)

class I3DHead(nn.Module):
    def __init__(self, cin, num_classes, dropout=0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout); self.fc_cls = nn.Linear(cin, num_classes)
        nn.init.normal_(self.fc_cls.weight, std=0.01); nn.init.zeros_(self.fc_cls.bias)
    def forward(self, x):
        return self.fc_cls(self.dropout(F.adaptive_avg_pool3d(x, 1).flatten(1)))
