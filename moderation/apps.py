from django.apps import AppConfig


class ModerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "moderation"

    def ready(self):
        # Moderation builds on rooms: it plugs its commands and restrictions into the
        # seam rooms defines, and rooms never imports moderation.
        from moderation import commands, limits, selectors
        from rooms import extensions

        commands.register()
        extensions.provide(
            restrictions=selectors.restrictions,
            blocked_ids=selectors.blocked_user_ids,
            send_rules=extensions.SendRules(
                columns_sql=selectors.restriction_columns_sql,
                columns_params=selectors.restriction_columns_params,
                check=limits.check_sends_allowed,
            ),
        )
