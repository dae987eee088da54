"""What to learn: Task and TaskSequence, synthetic and real generators, transforms, and the task registry.

Importing this package registers the built-in tasks; scikit-learn, mnist1d and torchvision are imported only
inside the functions that need them. Build any registered task with ``make(name, **params)``.
"""

from lazyrich.tasks.base import Phase, Task, TaskError, TaskSequence
from lazyrich.tasks.registry import (
    available,
    broken_entry_points,
    describe_all,
    make,
    register,
    task_defaults,
)

from lazyrich.tasks.generators import hierarchy, random_regression, student_teacher  # isort: skip
from lazyrich.tasks.real import digits, mnist1d, torchvision_dataset  # isort: skip
from lazyrich.tasks.transforms import (  # isort: skip
    continual_stream,
    flip_modes,
    new_feature,
    new_item,
    rescaled_pair,
    retarget,
    reversal,
    reversal_sequence,
    reverse,
    rotated_pair,
    swap_items,
    swap_outputs,
    transfer_rescaled,
    transfer_rotated,
)

__all__ = [
    "Phase",
    "Task",
    "TaskError",
    "TaskSequence",
    "available",
    "broken_entry_points",
    "continual_stream",
    "describe_all",
    "digits",
    "flip_modes",
    "hierarchy",
    "make",
    "mnist1d",
    "new_feature",
    "new_item",
    "random_regression",
    "register",
    "rescaled_pair",
    "retarget",
    "reversal",
    "reversal_sequence",
    "reverse",
    "rotated_pair",
    "student_teacher",
    "swap_items",
    "swap_outputs",
    "task_defaults",
    "torchvision_dataset",
    "transfer_rescaled",
    "transfer_rotated",
]
