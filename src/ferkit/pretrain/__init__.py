"""Pretraining that stands in for weights no one can download here.

The papers start from face- or web-pretrained networks: DICE-FER from a ResNet-18 trained to recognise faces
(CASIA-WebFace), UA-FER from OpenAI's CLIP. ferkit loads those from local files when the user has them. Where
they are absent (tests, ``ferkit demo``, SynthFER studies), these modules train the same kind of network on
the same kind of task, on data disjoint from the evaluation data, and write the weights in the format the
real ones ship in, so that the methods load them through the same path:

  ``ferkit.pretrain.resnet``  ResNet-18 trained on face identity classification -> torchvision-layout .pth
  ``ferkit.pretrain.clip``    a CLIP trained contrastively on captioned faces     -> open_clip checkpoint

Each module offers ``add_arguments(parser)`` and ``run(args) -> int`` for ``ferkit pretrain <kind>``.
"""

#: kinds of ``ferkit pretrain``, in the order the help lists them
KINDS = ("resnet18", "clip")
