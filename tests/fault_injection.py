"""Test-only fault injection: train, and SIGKILL the process at a chosen batch.

    python -m tests.fault_injection --kill_at=EPOCH:BATCH --config=... --workdir=...

`KillSwitch` is a Keras callback handed to `boundary_aware.train.train`; the
package itself carries no fault injector.
"""

import os
import signal

import keras


class KillSwitch(keras.callbacks.Callback):
    """SIGKILL this process after batch BATCH (0-based) of epoch EPOCH (1-based)."""

    def __init__(self, spec):
        super().__init__()
        epoch, batch = spec.split(":")
        self.at = (int(epoch), int(batch))
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv):
    from absl import flags

    from boundary_aware.train import train
    del argv
    f = flags.FLAGS
    callbacks = [KillSwitch(f.kill_at)] if f.kill_at else []
    train(f.config, f.workdir, callbacks=callbacks)


if __name__ == "__main__":
    from absl import app, flags

    from boundary_aware.train import define_flags
    define_flags()
    flags.DEFINE_string("kill_at", None, "EPOCH:BATCH at which to SIGKILL the process.")
    app.run(main)
