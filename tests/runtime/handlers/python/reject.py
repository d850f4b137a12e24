class OrderRejected(Exception):
    pass


def reject(reason):
    raise OrderRejected(reason)


def handler(event, context):
    reject("out of stock: ünïcode")
