"""Image few-shot tasks: Omniglot and Mini-ImageNet loaders, a decoded-image cache and the N-way K-shot
episode sampler. Submodules are imported on use, so importing this package stays cheap."""
