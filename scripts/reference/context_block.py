"""GCNet's global context block (mmcv.cnn.ContextBlock) rebuilt in 3D with plain PyTorch: the
same computation and state_dict keys as mmcv's, with Conv3d and LayerNorm([planes, 1, 1, 1]).
The PyTorch side of the project's ContextBlock (fixtures, checkpoint checks)."""
import torch, torch.nn as nn


class ContextBlock3d(nn.Module):
    def __init__(self, inplanes, ratio, pooling_type="att", fusion_types=("channel_add",)):
        super().__init__()
        assert pooling_type in ("att", "avg") and fusion_types
        self.inplanes, self.planes = inplanes, int(inplanes * ratio)
        self.pooling_type, self.fusion_types = pooling_type, fusion_types
        if pooling_type == "att":
            self.conv_mask = nn.Conv3d(inplanes, 1, kernel_size=1)
            self.softmax = nn.Softmax(dim=2)
        else:
            self.avg_pool = nn.AdaptiveAvgPool3d(1)

        def transform():
            return nn.Sequential(nn.Conv3d(self.inplanes, self.planes, kernel_size=1),
                                 nn.LayerNorm([self.planes, 1, 1, 1]), nn.ReLU(inplace=True),
                                 nn.Conv3d(self.planes, self.inplanes, kernel_size=1))
        self.channel_add_conv = transform() if "channel_add" in fusion_types else None
        self.channel_mul_conv = transform() if "channel_mul" in fusion_types else None
        for t in (self.channel_add_conv, self.channel_mul_conv):
            if t is not None: nn.init.zeros_(t[-1].weight); nn.init.zeros_(t[-1].bias)

    def spatial_pool(self, x):
        n, c = x.shape[:2]
        if self.pooling_type == "att":
            input_x = x.view(n, c, -1).unsqueeze(1)                       # N, 1, C, P
            mask = self.softmax(self.conv_mask(x).view(n, 1, -1))          # N, 1, P
            return torch.matmul(input_x, mask.unsqueeze(-1)).view(n, c, 1, 1, 1)
        return self.avg_pool(x)

    def forward(self, x):
        context = self.spatial_pool(x)
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(context))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)
        return out
