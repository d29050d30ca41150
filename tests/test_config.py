import pytest

from ganforge.config import TrainConfig
from ganforge.errors import ConfigError


def test_yaml_round_trip(tmp_path):
    cfg = TrainConfig(data="grid25", loss="hinge", betas=(0.0, 0.99), steps=10)
    cfg.save(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize("values,message", [
    ({"batch": 0}, "--batch must be greater than 0"),
    ({"lr": -1.0}, "--lr must be greater than 0"),
    ({"steps": 2.5}, "whole number"),
    ({"loss": "vanilla"}, "use one of minimax"),
    ({"model": "unet"}, "use one of mlp, dcgan"),
    ({"precision": "fp8"}, "use one of auto, fp32"),
    ({"steps": 5, "epochs": 1.0}, "only one"),
    ({"betas": (0.5, 1.5)}, "betas"),
    ({"latent_components": -1}, "--latent-components must be a whole number >= 0"),
    ({"latent_components": True}, "--latent-components must be a whole number >= 0"),
    ({"latent_components": 8, "latent_dim": 1}, "--latent-components needs --latent-dim 2 or more"),
    ({"d_hidden": -4}, "--d-hidden must be a whole number >= 0"),
])
def test_invalid_values_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values).validate()


def test_unknown_yaml_key(tmp_path):
    (tmp_path / "c.yaml").write_text("data: digits\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate.*valid ones"):
        TrainConfig.from_yaml(tmp_path / "c.yaml")


def test_broken_yaml(tmp_path):
    (tmp_path / "c.yaml").write_text("data: [digits\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.from_yaml(tmp_path / "c.yaml")


def test_resolve_fills_loss_defaults():
    wgan = TrainConfig(loss="wgan").resolve(1000, (1, 8, 8))
    assert (wgan.optimizer, wgan.lr, wgan.d_steps) == ("rmsprop", 5e-5, 5)
    gp = TrainConfig(loss="wgan-gp", lr=3e-4).resolve(1000, (1, 8, 8))
    assert (gp.lr, gp.betas, gp.d_norm, gp.d_steps) == (3e-4, (0.0, 0.9), "layer", 5)
    ns = TrainConfig(data="ring8").resolve(1000, (2,))
    assert (ns.model, ns.d_steps, ns.lr, ns.lr_d, ns.latent_dim, ns.lr_decay) == ("mlp", 1, 1e-3, 2e-3, 2, 0.5)
    grid = TrainConfig(data="grid25").resolve(1000, (2,))
    assert (grid.lr, grid.lr_d) == (2e-3, 2e-3)  # grid25 measured best with G as fast as D
    own_lr = TrainConfig(data="grid25", lr=5e-4).resolve(1000, (2,))
    assert own_lr.lr_d == 5e-4  # the preset's D rate belongs to the preset's G rate
    gp2d = TrainConfig(data="grid25", loss="wgan-gp").resolve(1000, (2,))
    assert (gp2d.lr, gp2d.lr_d, gp2d.betas, gp2d.d_steps) == (1e-4, 1e-4, (0.0, 0.9), 5)
    images = TrainConfig().resolve(1000, (1, 8, 8))
    assert (images.latent_dim, images.r1, images.lr_decay, images.ema) == (64, 0.0, 0.0, 0.999)
    fashion = TrainConfig(data="fashion-mnist").resolve(1000, (1, 28, 28))
    assert (fashion.latent_dim, fashion.batch, fashion.lr, fashion.lr_d) == (16, 32, 4e-4, 8e-4)
    assert TrainConfig(data="fashion-mnist", latent_dim=100).resolve(1000, (1, 28, 28)).latent_dim == 100


def test_conditional_runs_default_to_the_hinge_loss_at_batch_64():
    """The nonsaturating loss, and hinge at batch 32, made one image per class on conditional Fashion-MNIST;
    what the user sets is kept."""
    shape = (1, 28, 28)
    assert TrainConfig(data="fashion-mnist").resolve(60000, shape).loss == "nonsaturating"
    conditional = TrainConfig(data="fashion-mnist", conditional=True).resolve(60000, shape)
    assert (conditional.loss, conditional.batch, conditional.lr, conditional.lr_d) == ("hinge", 64, 4e-4, 8e-4)
    assert conditional.latent_dim == 64  # not the unconditional preset's 16: classes came out less reliably
    assert TrainConfig(data="fashion-mnist", conditional=True, batch=16).resolve(60000, shape).batch == 16
    chosen = TrainConfig(data="fashion-mnist", conditional=True, loss="nonsaturating").resolve(60000, shape)
    assert chosen.loss == "nonsaturating"
    critic = TrainConfig(data="fashion-mnist", conditional=True, loss="wgan-gp").resolve(60000, shape)
    assert (critic.loss, critic.d_steps) == ("wgan-gp", 5)


def test_epochs_become_steps():
    cfg = TrainConfig(epochs=2.0, batch=100, loss="wgan").resolve(1000, (1, 8, 8))
    assert cfg.steps == 2 * 1000 // (100 * 5) and cfg.epochs is None


def test_digits_preset_augments_and_none_turns_it_off(tmp_path):
    assert TrainConfig(data="digits").resolve(1797, (1, 8, 8)).augment == "translation"
    assert TrainConfig(data="fashion-mnist").resolve(60000, (1, 28, 28)).augment is None
    off = TrainConfig(data="digits", augment="none").resolve(1797, (1, 8, 8))
    assert not off.augment
    off.save(tmp_path / "c.yaml")  # replaying the saved config keeps it off
    assert not TrainConfig.from_yaml(tmp_path / "c.yaml").resolve(1797, (1, 8, 8)).augment


def test_fashion_mnist_rates_come_as_a_pair():
    shape = (1, 28, 28)
    tuned = TrainConfig(data="fashion-mnist").resolve(60000, shape)
    assert (tuned.lr, tuned.lr_d, tuned.batch, tuned.steps) == (4e-4, 8e-4, 32, 10000)
    mine = TrainConfig(data="fashion-mnist", lr=1e-4).resolve(60000, shape)  # the user's G rate: D follows it
    assert (mine.lr, mine.lr_d) == (1e-4, 1e-4)
    critic = TrainConfig(data="fashion-mnist", loss="wgan-gp").resolve(60000, shape)  # the loss's own settings win
    assert (critic.lr, critic.lr_d) == (1e-4, 1e-4)
    assert TrainConfig(data="mnist").resolve(60000, shape).lr == 2e-4  # measured on Fashion-MNIST only


def test_resuming_an_older_run_keeps_what_it_trained_with(tmp_path):
    # a digits run saved before --lr-decay existed and with augmentation off (null) resumes as it trained,
    # not with the presets added since (translation for digits)
    old = TrainConfig(data="digits", steps=10).resolve(1797, (1, 16, 16)).to_dict()
    old.pop("lr_decay")
    old.pop("latent_components")
    old["augment"] = None
    import yaml

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    resumed = TrainConfig.from_run(tmp_path).resolve(1797, (1, 16, 16))
    assert resumed.lr_decay == 0.0 and not resumed.augment and resumed.latent_components == 0
    fresh = TrainConfig.from_yaml(tmp_path / "config.yaml").resolve(1797, (1, 16, 16))  # a replayed file: today's defaults
    assert fresh.augment == "translation"


def test_grid25_runs_saved_before_latent_components_resume_without_them(tmp_path):
    import yaml

    old = TrainConfig(data="grid25").resolve(100_000, (2,)).to_dict()
    assert old["latent_components"] == 50 and old["latent_dim"] == 3  # today's preset
    old.pop("latent_components")
    old["latent_dim"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    resumed = TrainConfig.from_run(tmp_path).resolve(100_000, (2,))
    assert resumed.latent_components == 0 and resumed.latent_dim == 2  # the G its checkpoint holds


def test_fashion_mnist_preset_gives_the_dcgan_d_its_hidden_head_only():
    shape = (1, 28, 28)
    assert TrainConfig(data="fashion-mnist").resolve(60000, shape).d_hidden == 128
    assert TrainConfig(data="fashion-mnist", model="resnet").resolve(60000, shape).d_hidden == 0
    assert TrainConfig(data="fashion-mnist", conditional=True).resolve(60000, shape).d_hidden == 0
    assert TrainConfig(data="fashion-mnist", d_hidden=0).resolve(60000, shape).d_hidden == 0
    assert TrainConfig(data="mnist").resolve(60000, shape).d_hidden == 0


def test_fashion_mnist_runs_saved_before_the_hidden_head_resume_with_the_linear_one(tmp_path):
    import yaml

    old = TrainConfig(data="fashion-mnist").resolve(60000, (1, 28, 28)).to_dict()
    old.pop("d_hidden")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert TrainConfig.from_run(tmp_path).resolve(60000, (1, 28, 28)).d_hidden == 0  # the D its checkpoint holds
