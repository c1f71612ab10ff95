"""Starts os-ken with the given apps (os-ken 4.x on PyPI ships no osken-manager script).

Usage: python osken_run.py --ofp-tcp-listen-port PORT app.py [app.py ...]
"""

import sys

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.lib import hub

hub.patch(thread=False)


def main():
    args = sys.argv[1:]
    apps = [a for a in args if a.endswith(".py")]
    opts = [a for a in args if not a.endswith(".py")]
    cfg.CONF(args=opts, project="os_ken")
    mgr = app_manager.AppManager.get_instance()
    mgr.load_apps(apps)
    services = mgr.instantiate_apps(**mgr.create_contexts())
    hub.joinall(services)


if __name__ == "__main__":
    main()
